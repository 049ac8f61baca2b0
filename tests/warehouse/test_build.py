"""Key tests on every model (from each model's .yml), incremental == full, atomic publish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import Engine

from tests.warehouse.conftest import assert_published, assert_same_tables, work
from tests.warehouse.seed import Seed, T
from warehouse import queries
from warehouse.build import BuildError, build, load_models
from warehouse.metrics import MARTS

MODELS = load_models()


def scenario(engine: Engine, upto: int = 2) -> Seed:
    """A small busy day: two channels, three agents, reopen, reassign, bot, unanswered, presence."""
    s = Seed(engine, timezone="Europe/Berlin", business_hours={"mon": [["09:00", "17:00"]],
                                                               "tue": [["09:00", "17:00"]]})
    wa, tg = s.channel("wa"), s.channel("tg", "telegram")
    ann, bob, boss = s.user("ann@x.io"), s.user("bob@x.io"), s.user("boss@x.io", "manager")
    a, b, c = s.conversation(wa, "a"), s.conversation(tg, "b"), s.conversation(wa, "c")
    s.inbound(a, "2026-03-02 08:00")
    s.bot(a, "2026-03-02 08:00:03")
    s.accept(a, "2026-03-02 08:02", ann)
    s.reply(a, "2026-03-02 08:06", ann)
    s.inbound(b, "2026-03-02 08:10")
    s.accept(b, "2026-03-02 08:11", bob)
    s.reassign(b, "2026-03-02 08:15", boss, ann)
    s.reply(b, "2026-03-02 08:20", bob)
    s.inbound(b, "2026-03-02 08:30")
    s.complete(a, "2026-03-02 09:00", ann)
    s.presence(ann, "ONLINE", "2026-03-02 08:00")
    s.presence(ann, "ONLINE", "2026-03-02 08:01")
    if upto >= 2:
        s.inbound(a, "2026-03-02 17:30")  # reopen after hours
        s.inbound(c, "2026-03-02 18:00")
        s.reply(a, "2026-03-03 09:05", bob)
        s.complete(b, "2026-03-03 09:10", ann)
        s.presence(bob, "ONLINE", "2026-03-03 09:00")
    return s


@pytest.fixture
def built(engine: Engine, db_url: str, tmp_path: Path) -> Path:
    scenario(engine)
    path = tmp_path / "w"
    build(db_url, path, full=True, now=T("2026-03-03 12:00"))
    return path


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_model_keys(built: Path, model: Any) -> None:
    tests = model.config.get("tests", {})
    assert model.config.get("grain"), f"{model.name}.yml states no grain"
    with work(built) as con:
        cols = [r[0] for r in con.execute(f"describe {model.name}").fetchall()]
        assert set(cols) == set(model.config.get("columns", {})), f"{model.name}: columns and .yml disagree"
        assert _count(con, f"select count(*) from {model.name}") > 0, f"{model.name} is empty in the scenario"
        key = ", ".join(tests["unique"])
        dup = _count(con, f"select count(*) from (select {key} from {model.name} group by all having count(*) > 1)")
        assert dup == 0, f"{model.name}: grain ({key}) not unique"
        for col in tests.get("not_null", []):
            assert _count(con, f"select count(*) from {model.name} where {col} is null") == 0, f"{model.name}.{col}"
        for rel in tests.get("relationships", []):
            orphans = _count(con, f"select count(*) from {model.name} m where m.{rel['column']} is not null and "
                                  f"m.{rel['column']} not in (select {rel['field']} from {rel['to']})")
            assert orphans == 0, f"{model.name}.{rel['column']} → {rel['to']}.{rel['field']}"


def test_every_mart_of_the_spec_exists_and_is_documented(built: Path) -> None:
    assert_published(built)
    names = {m.name for m in MODELS if m.layer == "marts"}
    assert set(MARTS) <= names


def test_incremental_build_equals_full_build(engine: Engine, db_url: str, tmp_path: Path) -> None:
    s = scenario(engine, upto=1)
    inc, full = tmp_path / "inc", tmp_path / "full"
    r1 = build(db_url, inc, full=True, now=T("2026-03-02 12:00"))
    assert r1.full and r1.rows_extracted["messages"] > 0
    # more traffic: the reopen, a new conversation, a completion, presence
    a, b = sorted(s.state)[:2]
    ann = s.user("zed@x.io")
    s.inbound(a, "2026-03-02 17:30")
    s.reply(a, "2026-03-03 09:05", ann)
    s.complete(b, "2026-03-03 09:10", ann)
    d = s.conversation(s.state[a]["channel_id"], "d")
    s.inbound(d, "2026-03-03 10:00")
    s.presence(ann, "ONLINE", "2026-03-03 09:00")
    r2 = build(db_url, inc, now=T("2026-03-03 12:00"))
    assert not r2.full and r2.conversations_recomputed >= 3
    build(db_url, full, full=True, now=T("2026-03-03 12:00"))
    assert_same_tables(inc, full, [m.name for m in MODELS if m.materialized == "table"])
    assert_published(inc)
    # nothing new: nothing recomputed but the open recent conversations
    r3 = build(db_url, inc, now=T("2026-03-03 12:05"))
    assert r3.rows_extracted["messages"] == 0 and r3.rows_extracted["conversation_events"] == 0


def test_readers_never_block_the_build_and_never_see_a_half_build(engine: Engine, db_url: str,
                                                                    tmp_path: Path) -> None:
    s = scenario(engine, upto=1)
    path = tmp_path / "w"
    build(db_url, path, full=True, now=T("2026-03-02 12:00"))
    with queries.connect(path) as reader:  # a reader in the middle of a read transaction
        before = _count(reader, "select count(*) from conversation_cycles")
        c = s.conversation(s.state[sorted(s.state)[0]]["channel_id"], "late")
        s.inbound(c, "2026-03-02 12:30")
        build(db_url, path, now=T("2026-03-02 13:00"))  # not blocked by the open reader
        assert _count(reader, "select count(*) from conversation_cycles") == before  # its snapshot is intact
    with queries.connect(path) as con:
        assert _count(con, "select count(*) from conversation_cycles") == before + 1
    assert not list(path.glob(".build-*"))


def test_a_failed_build_leaves_the_published_warehouse_untouched(engine: Engine, db_url: str,
                                                                   tmp_path: Path) -> None:
    scenario(engine, upto=1)
    path = tmp_path / "w"
    build(db_url, path, full=True, now=T("2026-03-02 12:00"))
    snapshot = queries.snapshot_id(path)
    with pytest.raises(Exception, match="connect|connection|password|database"):
        build(db_url.replace("/sb_t_", "/missing_db_"), path, now=T("2026-03-02 13:00"))
    assert queries.snapshot_id(path) == snapshot
    assert not list(path.glob(".build-*"))
    with pytest.raises(BuildError, match="timezone-aware"):
        build(db_url, path, now=T("2026-03-02 13:00").replace(tzinfo=None))


def test_queries_read_api(built: Path) -> None:
    org = int(queries.organizations(built)["organization_id"][0])
    start, end = T("2026-03-01").date(), T("2026-03-31").date()
    per_agent = queries.response_times(built, org, start, end, group_by="agent")
    assert set(per_agent.columns) >= {"agent", "count", "mean_ms", "median_ms", "p90_ms", "min_ms", "max_ms"}
    assert dict(zip(per_agent["agent"], per_agent["count"], strict=True)) == {"ann@x.io": 1, "bob@x.io": 2}
    overall = queries.response_times(built, org, start, end)
    assert overall["count"][0] == 3 and overall["count_unanswered"][0] == 1  # b: 08:30 never answered
    biz = queries.time_metric_stats(built, org, "first_response", start, end, business_hours=True, group_by="day")
    assert biz.height >= 1
    for metric in ("queue", "handle", "resolution"):
        assert queries.time_metric_stats(built, org, metric, start, end).height == 1
    assert queries.hourly_volume(built, org, start, end)["total_messages_received"].sum() == 5
    live = queries.live_queue(built, org)
    assert live.height == 2  # a (reopened) and c
    assert queries.live_queue(built, org, limit=1).rows() == live.head(1).rows()  # the longest waiting
    assert queries.live_queue_counts(built, org) == {
        "open": 2, "unassigned": int(live["is_unassigned"].sum()), "unattended": int(live["is_unattended"].sum())}
    assert queries.live_queue_counts(built, org, channel_ids=[-1]) == {"open": 0, "unassigned": 0, "unattended": 0}
    assert queries.agent_daily(built, org, start, end).height > 0
    assert queries.channel_daily(built, org, start, end).height > 0
    assert queries.sla_daily(built, org, start, end).height > 0
    assert queries.sla_breaches(built, org, start, end).height >= 1
    assert queries.build_state(built)["watermarks"]["messages"] > 0
    with pytest.raises(ValueError, match="unknown metric"):
        queries.time_metric_stats(built, org, "nope", start, end)
    with pytest.raises(queries.WarehouseNotBuilt, match="warehouse build"):
        queries.live_queue(built.with_name("nothing"), org)
