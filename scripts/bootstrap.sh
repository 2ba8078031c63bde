#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: a Python 3.12 venv and the Debian packages the local stack runs on
# (PostGIS for pgstac, nginx as the local HTTP cache). `--run-only` stops there (`scripts/run.sh`); without it the
# test and deploy tools come too: the CDK extra, chromium for the viewer test, the pinned CDK CLI from npm.
# Installers' output goes to .local-stack/bootstrap.log; a failing step prints its tail.
set -euo pipefail
cd "$(dirname "$0")/.."

run_only=false
[ "${1:-}" = "--run-only" ] && run_only=true

mkdir -p .local-stack
LOG=.local-stack/bootstrap.log
: >"$LOG"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# step "what it did" command...: one line with the step's time, or the tail of its output when it fails.
step() {
  local what=$1 start=${EPOCHREALTIME/./} tenths
  shift
  if "$@" >>"$LOG" 2>&1; then
    tenths=$(((${EPOCHREALTIME/./} - start) / 100000))
    log "$what ($((tenths / 10)).$((tenths % 10)) s)"
  else
    local code=$?
    log "FAILED: $what (exit $code); the end of $LOG:"
    tail -n 25 "$LOG" >&2
    exit "$code"
  fi
}

# shellcheck source=scripts/python.sh
. scripts/python.sh
PY312=$(find_python312) || { log "Python 3.12 not found (looked under /root/.pyenv/versions/3.12.*)"; exit 1; }

# Every Python package comes from uv.lock (exactly the versions the suite last passed with), installed by a pinned
# uv; `bash scripts/upgrade.sh` is the deliberate step that moves them.
if [ "$("$PY312" -m uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  step "uv $UV_VERSION installed into $PY312" "$PY312" -m pip install -q "uv==$UV_VERSION"
fi
extras=(api md rotator test)
# --run-only leaves the CDK extra alone (installed or not) instead of removing it.
sync_mode=(--inexact)
$run_only || { extras+=(infra); sync_mode=(); }
step "project and locked dependencies installed into .venv (extras ${extras[*]})" \
  "$PY312" -m uv sync -q --locked --python "$PY312" "${extras[@]/#/--extra=}" "${sync_mode[@]}"

apt_missing=()
dpkg -s postgresql-15-postgis-3 >/dev/null 2>&1 || apt_missing+=(postgresql-15-postgis-3)
[ -x /usr/sbin/nginx ] || apt_missing+=(nginx)
$run_only || [ -x /usr/bin/chromium ] || apt_missing+=(chromium)

# Debian's nginx package starts a system-wide server on port 80 when installed; the stack runs its own on
# 127.0.0.1, so services are kept from starting during the install (the standard policy-rc.d hook).
apt_install() {
  local policy=/usr/sbin/policy-rc.d added=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=true
  fi
  local code=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } || code=$?
  if $added; then rm -f "$policy"; fi
  return "$code"
}

if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "Debian packages installed: ${apt_missing[*]}" apt_install "${apt_missing[@]}"
  else
    log "missing Debian packages (what needs them is skipped or fails with a clear message): ${apt_missing[*]}"
  fi
fi

if ! $run_only && [ -f package.json ] && command -v npm >/dev/null; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    step "CDK CLI installed from package-lock.json" npm ci --no-audit --no-fund --loglevel=error
    touch node_modules
  fi
fi
