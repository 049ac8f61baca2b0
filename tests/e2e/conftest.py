"""Browser tests (marker ``browser``) need Debian's Chromium at ``/usr/bin/chromium``.

Where it is missing, the decision is made here, once, for every browser test:
- under CI (the ``CI`` environment variable set, as ``.ci/run`` does), the test FAILS with a message
  saying how to install it: a green CI run must include the browser tests;
- locally the test is skipped with that message, and pytest's ``-ra`` summary lists the skip.

Tests use :data:`CHROMIUM` and the ``browser`` marker; they carry no skip logic of their own.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "apt-get install -y chromium chromium-driver (scripts/test.sh does it when run as root)"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium is not installed at {CHROMIUM}: {INSTALL_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: sh scripts/bootstrap.sh dev"
    return None


@pytest.hookimpl(tryfirst=True)  # before the skipif/xfail plugin: CI fails even where a skipif remains
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("browser") is None:
        return
    reason = missing_browser()
    if reason is None:
        return
    if running_in_ci():
        pytest.fail(f"browser test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(f"browser test skipped: {reason} (with CI set this is a failure)")
