"""Streamlit AppTest of the analytics page over a warehouse built from seeded rows."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from switchboard.auth.login_sessions import create_session
from switchboard.settings import get_settings
from switchboard.uow import UnitOfWork
from tests.warehouse.seed import T
from tests.warehouse.test_build import scenario
from warehouse.build import build


def _analytics() -> None:
    from app.views import analytics

    analytics.page()


@pytest.fixture
def app_env(db_url: str, tmp_path: Path) -> Iterator[Path]:
    from app import deps

    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "WAREHOUSE_PATH")}
    path = tmp_path / "warehouse.duckdb"
    os.environ["DATABASE_URL"] = db_url
    os.environ["WAREHOUSE_PATH"] = str(path)
    get_settings.cache_clear()
    deps.engine.clear()
    yield path
    deps.engine().dispose()
    deps.engine.clear()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


def test_manager_sees_response_times_heatmap_sla_and_live_queue(engine: Engine, db_url: str,
                                                                 app_env: Path) -> None:
    s = scenario(engine)
    boss = s.user("lead@x.io", "manager")
    with UnitOfWork(engine) as uow:
        token = create_session(uow, boss)
        uow.commit()
    at = AppTest.from_function(_analytics, default_timeout=30)
    at.session_state["sb_auth_token"] = token.token
    at.session_state["sb_auth_actor"] = token.actor
    at.session_state["sb_auth_name"] = token.name
    at.session_state["sb_auth_checked_at"] = time.monotonic()
    at.session_state["sb_auth_restore_tried"] = True
    at.run()
    assert not at.exception, at.exception
    assert any("not been built" in i.value for i in at.info)

    build(db_url, app_env, full=True, now=T("2026-03-03 12:00"))
    at.session_state["analytics_days"] = (date(2026, 3, 1), date(2026, 3, 31))
    at.run()
    assert not at.exception, at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["Count"] == "3"  # first responses: a (ann), b (bob), a reopened (bob)
    assert labels["Open"] == "2" and labels["Unattended (waiting for a reply)"] == "1"
    assert len(at.get("plotly_chart")) >= 4
    at.toggle(key="analytics_business").set_value(True).run()
    assert not at.exception, at.exception
    at.selectbox(key="analytics_metric").set_value("resolution").run()
    assert not at.exception, at.exception
