"""Streamlit AppTest of the analytics page over a warehouse built from seeded rows."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from switchboard.errors import PermissionDenied
from switchboard.policy import actor_for_user
from switchboard.services import runs
from switchboard.services.analytics import analytics_reader
from switchboard.settings import get_settings
from switchboard.uow import UnitOfWork
from switchboard.workflows.warehouse import build_when_free
from tests.helpers import login_apptest
from tests.warehouse.seed import Seed, T
from tests.warehouse.test_build import scenario
from warehouse import queries
from warehouse.build import build
from warehouse.extract import conninfo
from warehouse.lake import read_pointer
from warehouse.publish import build_lock


def _analytics() -> None:
    from app.views import analytics

    analytics.page()


@pytest.fixture
def app_env(db_url: str, tmp_path: Path) -> Iterator[Path]:
    from app import deps

    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "WAREHOUSE_PATH")}
    path = tmp_path / "warehouse"
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


def _signed_in(engine: Engine, user_id: int) -> AppTest:
    return login_apptest(AppTest.from_function(_analytics, default_timeout=30), engine, user_id)


def test_manager_sees_response_times_heatmap_sla_and_live_queue(engine: Engine, db_url: str,
                                                                 app_env: Path) -> None:
    s = scenario(engine)
    at = _signed_in(engine, s.user("lead@x.io", "manager"))
    at.run()
    assert not at.exception, at.exception
    assert any("not been built" in i.value for i in at.info)

    build(db_url, app_env, full=True, now=T("2026-03-03 12:00"))
    at.session_state["analytics_days"] = (date(2026, 3, 1), date(2026, 3, 31))
    at.run()
    assert not at.exception, at.exception
    labels = {m.label: m.value for m in at.metric}
    # cycles started: a, b, a reopened, c; first responses: a (ann), b (bob), a reopened (bob)
    assert labels["Conversations started"] == "4" and labels["Completed"] == "2"
    assert labels["Median first response"] == "10.0 min"
    # only the open tab (the first) ran: its table, no other tab's chart
    assert not at.get("plotly_chart") and [d.key for d in at.dataframe] == ["table_agents"]
    assert sorted(at.dataframe[0].value["Agent"]) == ["ann@x.io", "bob@x.io"]
    charts, downloads = 0, len(at.get("download_button"))
    for label in ("Channels", "Trends", "Distribution", "Weekday × hour", "SLA", "Live queue", "All conversations"):
        at.session_state["tab"] = label
        at.run()
        assert not at.exception, (label, at.exception)
        charts += len(at.get("plotly_chart"))
        downloads += len(at.get("download_button"))
        if label == "Live queue":
            live = {m.label: m.value for m in at.metric}
            assert live["Open"] == "2" and live["Unattended (waiting for a reply)"] == "1"
        if label == "Trends":
            assert "Median (min)" in at.get("plotly_chart")[1].proto.spec  # legends in words, not median_min
    assert charts >= 5
    assert downloads >= 6  # every table can be exported
    # drill from the heatmap: Monday 09:00-09:59 Berlin (08:xx UTC) holds the turns of a and b
    at.session_state["tab"] = "Weekday × hour"
    at.run()
    at.selectbox(key="analytics_cell_day").set_value(1)
    at.selectbox(key="analytics_cell_hour").set_value(9)
    at.button(key="analytics_cell_drill").click().run()
    assert not at.exception, at.exception
    assert any("Conversations with a customer turn on Mon 09:00" in h.value for h in at.subheader)
    drilled = [d.value for d in at.dataframe if "Customer" in d.value.columns][-1]  # the list under the tabs
    assert sorted(drilled["Customer"]) == ["a", "b"]
    assert all(link.startswith("/?c=") for link in drilled["Open"])  # the inbox is the default page
    # one agent, business hours, another metric: still no error
    at.selectbox(key="analytics_agent").set_value("ann@x.io").run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Conversations started"] == "2"  # a, and b (reassigned to her)
    at.toggle(key="analytics_business").set_value(True).run()
    assert not at.exception, at.exception
    at.selectbox(key="analytics_metric").set_value("resolution").run()
    assert not at.exception, at.exception


def test_an_empty_range_says_why(engine: Engine, db_url: str, app_env: Path) -> None:
    s = scenario(engine)
    build(db_url, app_env, full=True, now=T("2026-03-03 12:00"))
    at = _signed_in(engine, s.user("lead@x.io", "manager"))
    at.session_state["analytics_days"] = (date(2025, 1, 1), date(2025, 1, 7))
    at.run()
    assert not at.exception, at.exception
    assert "No agent activity in the selected range." in [i.value for i in at.info]
    at.session_state["tab"] = "Channels"
    at.run()
    assert not at.exception, at.exception
    assert "No traffic in the selected range." in [i.value for i in at.info]


def test_an_agent_is_refused_and_reads_nothing(engine: Engine, db_url: str, app_env: Path) -> None:
    s = scenario(engine)
    build(db_url, app_env, full=True, now=T("2026-03-03 12:00"))
    at = _signed_in(engine, s.user("agent@x.io", "agent"))
    at.run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["only admins and managers may read the analytics; you are an agent"]
    assert not at.metric and not at.get("plotly_chart") and not at.dataframe


def test_the_reader_is_bound_to_the_callers_organization(engine: Engine, db_url: str, app_env: Path) -> None:
    s = scenario(engine)
    other = Seed(engine)
    other_wa = other.channel("other-wa")
    other.inbound(other.conversation(other_wa, "x"), "2026-03-02 10:00")
    build(db_url, app_env, full=True, now=T("2026-03-03 12:00"))
    with UnitOfWork(engine) as uow:
        agent = actor_for_user(uow, s.user("agent2@x.io", "agent"))
        with pytest.raises(PermissionDenied, match="only admins and managers may read the analytics"):
            analytics_reader(uow, agent, app_env)
        reader = analytics_reader(uow, actor_for_user(uow, other.user("lead@o.io", "manager")), app_env)
    assert reader.organization_id == other.org_id
    assert reader.read("channels")["channel_key"].to_list() == ["other-wa"]  # never the scenario's channels
    assert reader.read("live_queue")["organization_id"].to_list() == [other.org_id]
    with pytest.raises(ValueError, match="not an analytics read"):
        reader.read("organizations")  # every organization's names: not for a manager


def _org_page() -> None:
    from app.views import admin_org

    admin_org.page()


def _business_ms(path: Path, conversation_id: int) -> list[int]:
    return queries.query(path, "select response_business_ms from response_times where conversation_id = ? "
                               "and response_ms is not null order by turn_number", [conversation_id])[
        "response_business_ms"].to_list()


def test_saving_the_business_hours_rebuilds_the_warehouse(engine: Engine, db_url: str, app_env: Path) -> None:
    s = Seed(engine, timezone="UTC", business_hours={"mon": [["09:00", "17:00"]]})
    ch, ann = s.channel(), s.user("ann@x.io")
    c = s.conversation(ch)
    s.inbound(c, "2026-03-02 08:00")
    s.reply(c, "2026-03-02 10:00", ann)  # 1 business hour with Monday 09:00-17:00
    build(db_url, app_env, full=True, now=T("2026-03-03 00:00"))
    assert _business_ms(app_env, c) == [3_600_000]
    at = login_apptest(AppTest.from_function(_org_page, default_timeout=30), engine, s.user("root@x.io", "admin"))
    at.run()
    at.text_input(key="bh_mon_start").input("07:00")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("being rebuilt" in m.value for m in at.success)
    deadline = time.monotonic() + 120
    while _business_ms(app_env, c) != [7_200_000]:  # 08:00-10:00 is now inside the hours
        assert time.monotonic() < deadline, "the warehouse was not rebuilt after the calendar changed"
        time.sleep(0.5)
    while True:  # the run is recorded just after the build is published
        with UnitOfWork(engine) as uow:
            [run] = [r for r in runs.last_runs(uow) if r.name == "warehouse-build"]
        if run.status != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert run.status == "ok" and run.detail["reason"] == "organization settings saved"


def test_a_rebuild_waits_for_the_running_build(engine: Engine, db_url: str, app_env: Path) -> None:
    scenario(engine)
    build(db_url, app_env, full=True, now=T("2026-03-03 12:00"))
    waits: list[float] = []
    with ExitStack() as running:
        running.enter_context(build_lock(read_pointer(app_env), conninfo(db_url)))  # another build is running

        def sleep(seconds: float) -> None:  # … and finishes while we wait
            waits.append(seconds)
            running.close()

        result = build_when_free(engine, get_settings(), reason="test", sleep=sleep)
    assert waits == [5] and result["reason"] == "test" and not result["full"]


def test_a_long_cycle_list_shows_its_first_rows_and_every_customer_is_named(
        engine: Engine, db_url: str, app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.views import analytics
    from switchboard.services import inbox_views

    s = scenario(engine)  # 4 cycles: a, b, a reopened, c
    build(db_url, app_env, full=True, now=T("2026-03-03 12:00"))
    lead = s.user("lead@x.io", "manager")
    monkeypatch.setattr(analytics, "ROWS_SHOWN", 2)
    at = _signed_in(engine, lead)
    at.session_state["analytics_days"] = (date(2026, 3, 1), date(2026, 3, 31))
    at.session_state["tab"] = "All conversations"
    at.run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "Customer" in d.value.columns)
    assert table.shape[0] == 2 and sorted(table["Customer"]) == ["a", "b"]  # oldest first
    assert "The first 2 of 4 cycles (oldest first); the CSV has every one." in [c.value for c in at.caption]
    assert at.get("download_button")[-1].proto.label == "Download CSV (4 rows)"
    monkeypatch.setattr(analytics, "ROWS_SHOWN", 1)
    at.query_params["tab"] = "Live queue"  # as a link to the tab opens it
    at.run()
    assert not at.exception, at.exception
    assert at.dataframe[-1].value.shape[0] == 1
    assert ("The first 1 of 2 open conversations (unattended first, then the longest waiting); the CSV has every "
            "one.") in [c.value for c in at.caption]
    assert at.get("download_button")[-1].proto.label == "Download CSV (2 rows)"
    at.query_params["tab"] = "No such tab"  # a mistyped link: no error, the tab stays, the URL names it
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["tab"] == "Live queue" and at.query_params["tab"] == "Live queue"

    # the customers' names, read a few ids per statement: every conversation named, none invented
    monkeypatch.setattr(inbox_views, "NAMES_PER_STATEMENT", 2)
    other = Seed(engine)
    stranger = other.conversation(other.channel("other-wa"), "x")
    with UnitOfWork(engine) as uow:
        names = inbox_views.customer_names(uow, actor_for_user(uow, lead), [*s.state, stranger])
    assert sorted(names.values()) == ["a", "b", "c"]  # the other organization's conversation is absent
