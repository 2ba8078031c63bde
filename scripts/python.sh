# Sourced by bootstrap.sh and upgrade.sh: the Python 3.12 the venv is built with, and the uv version installs use.
UV_VERSION=0.13.9

find_python312() {
  for candidate in /root/.pyenv/versions/3.12.*/bin/python3.12 "$(command -v python3.12 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}
