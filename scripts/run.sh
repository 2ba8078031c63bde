#!/usr/bin/env bash
# The whole system on 127.0.0.1 (moto with IAM auth, Earthdata emulator, credential rotator, pgstac when PostgreSQL is
# installed, the raster API and its viewer on http://127.0.0.1:8000/). Ctrl-C stops everything.
# Options go to `python -m local_stack` (--port N, --no-pgstac, --real-aws, --rotate-every S, --state-file PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m local_stack "$@"
