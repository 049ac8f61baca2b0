#!/bin/sh
# One command: install everything the tests need, then lint, type-check and run the whole test suite.
# Extra arguments go to pytest. With CI set (as .ci/run does), a browser that cannot be installed is an
# error here and a failure of every browser test; without CI those tests are skipped and listed by -ra.
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh dev
ci=false
case "$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')" in
  ""|0|false|no) ;;
  *) ci=true ;;
esac
no_browser() {
  if [ "$ci" = true ]; then
    echo "error: $1; CI runs the browser tests, so it needs Chromium at /usr/bin/chromium" >&2
    exit 1
  fi
  echo "warning: $1; the browser tests will be skipped (listed in pytest's summary)" >&2
}
# Browser tests drive Debian's Chromium; install it when we can (root + apt).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the browser tests (apt)…"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
      no_browser "apt-get could not install chromium (see the apt output above)"
    elif [ ! -x /usr/bin/chromium ]; then
      no_browser "apt-get installed chromium but /usr/bin/chromium is missing"
    fi
  else
    no_browser "Chromium is not installed and cannot be installed here (needs root and apt-get): run apt-get install -y chromium chromium-driver"
  fi
fi
export PREFECT_SERVER_ANALYTICS_ENABLED=false
echo "== ruff";  .venv/bin/ruff check .
echo "== mypy";  .venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
