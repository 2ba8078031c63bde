#!/usr/bin/env bash
# Re-take the viewer screenshots shown in docs/local-stack.md (docs/viewer-opening.png, docs/viewer-validation.png): the
# browser tests' own visits, with Debian's chromium, against the local samples.
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWER_SCREENSHOTS=docs .venv/bin/python -m pytest tests/test_viewer_browser.py -q "$@"
