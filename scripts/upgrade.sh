#!/usr/bin/env bash
# The deliberate step that moves dependencies: re-resolve uv.lock to the newest releases pyproject.toml allows
# (or only the packages named: `bash scripts/upgrade.sh moto rasterio`), then run the whole suite, which installs
# exactly the new lock. Commit uv.lock only when the suite passes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --run-only >/dev/null  # the pinned uv
# shellcheck source=scripts/python.sh
. scripts/python.sh
PY312=$(find_python312)
if [ $# -eq 0 ]; then
  "$PY312" -m uv lock --upgrade
else
  "$PY312" -m uv lock "${@/#/--upgrade-package=}"
fi
git --no-pager diff --stat -- uv.lock
exec bash scripts/test.sh
