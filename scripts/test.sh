#!/usr/bin/env bash
# The whole test suite: set-up, lint, type check, pytest. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Two workers, each test module on one (its module fixtures stay whole): idle waits of one module overlap the
# other's work on this 2-core machine.
.venv/bin/python -m pytest -n 2 --dist loadfile "$@"
