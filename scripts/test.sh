#!/usr/bin/env bash
# The whole test suite: set-up, lint, type check, the documentation build, pytest. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The documentation site: a broken link or anchor fails the build (--strict; not --quiet, which hides warnings).
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir .local-stack/site >.local-stack/mkdocs.log 2>&1 ||
  { cat .local-stack/mkdocs.log >&2; exit 1; }
# Two workers, each test module on one (its module fixtures stay whole): idle waits of one module overlap the
# other's work on this 2-core machine.
.venv/bin/python -m pytest -n 2 --dist loadfile "$@"
