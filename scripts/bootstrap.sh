#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Python 3.12 venv with every extra, Debian packages the tests need
# (PostGIS for pgstac, chromium for the viewer test), and the pinned CDK CLI from npm.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

find_python312() {
  for candidate in /root/.pyenv/versions/3.12.*/bin/python3.12 "$(command -v python3.12 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

PY312=$(find_python312) || { log "Python 3.12 not found (looked under /root/.pyenv/versions/3.12.*)"; exit 1; }

if ! "$PY312" -m uv --version >/dev/null 2>&1; then
  log "installing uv into $PY312"
  "$PY312" -m pip install -q uv
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $PY312"
  "$PY312" -m uv venv -q -p "$PY312" .venv
fi
log "installing the project and its extras into .venv"
"$PY312" -m uv pip install -q -p .venv/bin/python -e ".[api,rotator,infra,test]"

apt_missing=()
dpkg -s postgresql-15-postgis-3 >/dev/null 2>&1 || apt_missing+=(postgresql-15-postgis-3)
[ -x /usr/bin/chromium ] || apt_missing+=(chromium)
if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${apt_missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  else
    log "missing Debian packages (tests needing them will be skipped): ${apt_missing[*]}"
  fi
fi

if [ -f package.json ] && command -v npm >/dev/null; then
  if [ ! -d node_modules ] || [ package.json -nt node_modules ]; then
    log "installing the CDK CLI from package.json"
    npm install --no-audit --no-fund --loglevel=error >/dev/null
    touch node_modules
  fi
fi
