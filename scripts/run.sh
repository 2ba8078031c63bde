#!/usr/bin/env bash
# Start the raster API locally on 127.0.0.1:8000 (issue 6 turns this into the full local stack).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m local_stack "$@"
