#!/usr/bin/env bash
# The whole system on 127.0.0.1 (moto with IAM auth, Earthdata emulator, credential rotator, pgstac when PostgreSQL is
# installed, the raster API and its viewer behind an nginx cache on http://127.0.0.1:8000/). Ctrl-C stops everything;
# every process's log stays in .local-stack/logs/.
# Installs only what running needs (scripts/bootstrap.sh --run-only; the test and deploy tools come with test.sh).
# Options go to `python -m local_stack` (--port N, --no-cdn, --no-pgstac, --real-aws, --rotate-every S,
# --state-file PATH, --stack-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --run-only
exec .venv/bin/python -m local_stack "$@"
