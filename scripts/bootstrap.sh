#!/bin/sh
# Create .venv (if needed) and install Switchboard with pinned versions. Usage: scripts/bootstrap.sh [extras]
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
EXTRAS="${1:-}"
STAMP=".venv/.installed-$(cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)${EXTRAS:+-$EXTRAS}"
if [ ! -f "$STAMP" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ -n "$EXTRAS" ]; then
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[$EXTRAS]"
  else
    .venv/bin/python -m pip install --quiet -c constraints.txt -e .
  fi
  touch "$STAMP"
fi
