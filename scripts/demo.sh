#!/bin/sh
# One command: install and run the whole demo on embedded defaults (Ctrl-C stops everything).
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh
exec .venv/bin/switchboard demo "$@"
