"""A real browser against the demo (seed + generated history + warehouse build on the test database).

The demo admin signs in once, then:

* every page of the admin's navigation loads without an error; with ``SWITCHBOARD_DOCS_SCREENSHOTS=1``
  each is saved as ``docs/screenshots/<url_path>.png`` (the README shows them; without it nothing is
  written, so the normal suite never rewrites the committed files);
* Analytics: a weekday × hour cell with traffic is drilled into, the drill list's CSV is downloaded and
  its rows are the warehouse's (``warehouse.queries.cycle_rows`` for the same filters), and
  "Open thread" opens that conversation in the inbox.
"""

from __future__ import annotations

import io
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import Engine, select

from app.main import offered
from switchboard.cli.demo import DEMO_PASSWORD, import_history, seed
from switchboard.db.schema import Conversation, User
from switchboard.settings import get_settings
from switchboard.uow import UnitOfWork
from tests.e2e import test_browser
from tests.e2e.test_browser import WAIT_MS, first_sign_in, launch
from warehouse import queries
from warehouse.build import build

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
HISTORY_DAYS = 10  # the demo loads 30; ten keep the test quick and still fill the default 7-day range
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

pytestmark = [pytest.mark.e2e, pytest.mark.browser]  # tests/e2e/conftest.py: skip or fail without Chromium
app_url_fixture = test_browser.app_url  # the app exactly as `switchboard app` starts it, on the test database


@pytest.fixture
def demo(settings_env: str, engine: Engine) -> dict[str, Any]:
    """The demo's seed and history on the test database, and its warehouse built (as `switchboard demo`)."""
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    seed(settings, engine)
    import_history(settings, engine, days=HISTORY_DAYS)
    build(settings_env, settings.warehouse_file, data_path=settings.warehouse_data_path)
    with UnitOfWork(engine) as uow:
        admin = uow.session.execute(select(User.id, User.organization_id)
                                    .where(User.email == "admin@demo.local")).one()
        open_conv = uow.session.execute(select(Conversation.id).where(Conversation.status != "COMPLETED")
                                        .order_by(Conversation.last_message_at.desc()).limit(1)).scalar()
    return {"admin_id": admin.id, "org_id": admin.organization_id, "open_conversation": open_conv,
            "warehouse": settings.warehouse_file}


def _settled(page: Any) -> None:
    """Wait until Streamlit has finished running the script, then check nothing failed."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=WAIT_MS)
    page.wait_for_timeout(800)  # charts draw after the script finished
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=WAIT_MS)
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()
    assert page.get_by_text("Traceback").count() == 0
    assert page.get_by_text("Page not found").count() == 0


def _visit_every_page(page: Any, app_url: str, demo: dict[str, Any]) -> list[str]:
    from playwright.sync_api import expect

    shoot = os.environ.get("SWITCHBOARD_DOCS_SCREENSHOTS", "").strip() not in ("", "0")
    visited = []
    for n, spec in enumerate(offered("admin")):
        if n == 0:  # the default page (the inbox) is served at the root, here with a conversation open
            page.goto(f"{app_url}/?c={demo['open_conversation']}" if demo["open_conversation"] else app_url)
        else:
            page.goto(f"{app_url}/{spec.url_path}")
        if spec.url_path not in ("inbox", "new-message"):
            expect(page.get_by_role("heading", name=re.compile(re.escape(spec.title))).first).to_be_visible(
                timeout=WAIT_MS)
        _settled(page)
        if shoot:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{spec.url_path}.png"))
        visited.append(spec.url_path)
    return visited


def _busiest_cell(demo: dict[str, Any], start: date, end: date) -> tuple[int, int, pl.DataFrame]:
    """The weekday × hour cell of the range with the most conversation cycles, and those cycles."""
    best: tuple[int, int, pl.DataFrame] | None = None
    for weekday in range(1, 8):
        for hour in range(8, 19):
            rows = queries.cycle_rows(demo["warehouse"], demo["org_id"], start, end, weekday=weekday, hour=hour)
            if best is None or rows.height > best[2].height:
                best = (weekday, hour, rows)
    assert best is not None and best[2].height > 0, "the demo history has no traffic in the last 7 days"
    return best


def _pick(page: Any, label: str, option: str) -> None:
    """Choose ``option`` in the selectbox ``label`` (a click while the app reruns may close the list:
    open it again); the drill list's title then says which cell was chosen."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.get_by_label(label, exact=True)
    for attempt in range(4):
        _settled(page)
        box.click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=5_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            if attempt == 3:
                raise


def test_demo_pages_heatmap_drill_csv_and_open_thread(demo: dict[str, Any], engine: Engine,
                                                     request: pytest.FixtureRequest) -> None:
    from playwright.sync_api import expect, sync_playwright

    app_url: str = request.getfixturevalue("app_url_fixture")  # after the demo is loaded

    today = date.today()
    start, end = today - timedelta(days=6), today  # the Analytics page's default range
    weekday, hour, expected = _busiest_cell(demo, start, end)

    with sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        try:
            first_sign_in(page, engine, app_url, "admin@demo.local", demo["admin_id"], DEMO_PASSWORD)
            visited = _visit_every_page(page, app_url, demo)
            assert visited[0] == "inbox" and "analytics" in visited and "account" in visited

            # Analytics: drill into the busiest weekday × hour cell of the default range
            page.goto(f"{app_url}/analytics")
            _settled(page)
            page.get_by_role("tab", name="Weekday × hour").click()
            _pick(page, "Weekday", WEEKDAYS[weekday - 1])
            _pick(page, "Hour", f"{hour:02d}:00–{hour:02d}:59")
            page.get_by_role("button", name="List this cell's conversations").click()
            title = f"Conversations with a customer turn on {WEEKDAYS[weekday - 1]} {hour:02d}:00–{hour:02d}:59"
            expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=WAIT_MS)
            _settled(page)

            # the drill list's CSV is the warehouse's rows for the same filters
            with page.expect_download() as info:
                page.locator(".st-key-csv_drill").get_by_role("button").click()
            csv = pl.read_csv(io.BytesIO(Path(info.value.path()).read_bytes()), try_parse_dates=False,
                              infer_schema=False)
            want = pl.read_csv(io.BytesIO(expected.select(queries.CYCLE_COLUMNS).write_csv().encode()),
                               infer_schema=False)
            assert csv.columns == ["customer", *queries.CYCLE_COLUMNS]
            assert csv.drop("customer").equals(want), "the downloaded CSV differs from the warehouse"
            first_customer = csv["customer"][0]
            first_conversation = int(csv["conversation_id"][0])

            # "Open thread" on the first listed cycle opens that conversation in the inbox
            grid = page.get_by_test_id("stDataFrame").last  # the drill list comes after the tabs
            grid.scroll_into_view_if_needed()
            box = grid.bounding_box()
            assert box is not None
            x, y = box["x"] + 30, box["y"] + 35 + 17  # the first data row's "Open thread" link
            page.mouse.move(x, y)
            page.wait_for_timeout(300)
            with context.expect_page() as opened:
                page.mouse.click(x, y)
            thread = opened.value
            thread.wait_for_load_state()
            assert f"c={first_conversation}" in thread.url
            expect(thread.get_by_text(first_customer).first).to_be_visible(timeout=WAIT_MS)
        finally:
            browser.close()
