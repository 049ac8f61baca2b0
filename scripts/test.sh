#!/bin/sh
# One command: install everything the tests need, then lint, type-check and run the whole test suite.
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh dev
# Browser tests drive Debian's Chromium; install it when we can (root + apt), otherwise they skip.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the browser tests (apt)…"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "chromium could not be installed: browser tests will be skipped"
fi
export PREFECT_SERVER_ANALYTICS_ENABLED=false
echo "== ruff";  .venv/bin/ruff check .
echo "== mypy";  .venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
