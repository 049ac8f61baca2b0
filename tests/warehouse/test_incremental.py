"""Incremental builds recompute only what changed and give exactly the rows of a full build.

Daily marts are recomputed only for the (organization, agent/channel, day) keys of the rows that
changed; running totals (concurrency, presence) per agent from the earliest changed day. Each step
below changes something different and compares every table of the incremental warehouse with a full
build at the same as-of time, row for row.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from sqlalchemy import Engine, update

from switchboard.db.schema import Message, Organization, User
from tests.warehouse.conftest import assert_published, assert_same_tables, work
from tests.warehouse.seed import Seed, T
from warehouse import queries
from warehouse.build import BuildReport, build, load_models, warehouse_state
from warehouse.lake import attach, read_pointer

TABLES = [m.name for m in load_models() if m.materialized == "table"]
KEYED = {m.name for m in load_models() if m.key_scoped}


def assert_same_as_full(db_url: str, inc: Path, tmp_path: Path, now: str) -> None:
    full = tmp_path / f"full-{now.replace(' ', '_').replace(':', '')}"
    build(db_url, full, full=True, now=T(now))
    assert_same_tables(inc, full, TABLES)
    assert_published(inc)
    with work(inc) as con:  # the comparison compared something: every scenario has cycles and turns
        for name in ("conversation_cycles", "response_times"):
            row = con.execute(f"select count(*) from {name}").fetchone()
            assert row is not None and row[0] > 0, f"{name} is empty: nothing was compared"


def _keyed(report: BuildReport) -> None:
    assert not report.full
    assert set(report.keys_recomputed) == KEYED, "the daily marts were not recomputed by key"


def test_incremental_builds_recompute_by_key_and_equal_full_builds(engine: Engine, db_url: str,
                                                                    tmp_path: Path) -> None:
    s = Seed(engine, timezone="Europe/Berlin", business_hours={"mon": [["09:00", "17:00"]],
                                                               "tue": [["09:00", "17:00"]]})
    wa, tg = s.channel("wa"), s.channel("tg", "telegram")
    ann, bob, boss = s.user("ann@x.io"), s.user("bob@x.io"), s.user("boss@x.io", "manager")
    a, b, c = s.conversation(wa, "a"), s.conversation(tg, "b"), s.conversation(wa, "c")
    s.inbound(a, "2026-03-01 22:30")  # Sunday evening UTC = 23:30 Berlin; the reply lands on Monday
    s.accept(a, "2026-03-01 22:40", ann)
    s.inbound(b, "2026-03-02 08:10")
    s.accept(b, "2026-03-02 08:11", bob)
    s.reply(b, "2026-03-02 08:20", bob)
    old = s.reply(b, "2026-03-02 08:25", bob)
    s.inbound(b, "2026-03-02 08:30")
    s.inbound(c, "2026-03-02 09:00")
    s.accept(c, "2026-03-02 09:01", bob)
    s.reply(c, "2026-03-02 09:03", bob)
    s.complete(c, "2026-03-02 09:30", bob)
    s.presence(ann, "ONLINE", "2026-03-01 22:50")
    s.presence(ann, "ONLINE", "2026-03-01 22:55")
    s.presence(bob, "ONLINE", "2026-03-02 08:00")
    s.presence(bob, "ONLINE", "2026-03-02 11:58")  # latest: its span runs to the build's as-of time
    inc = tmp_path / "inc"
    assert build(db_url, inc, full=True, now=T("2026-03-02 12:00")).full

    # step 1: replies, a reassignment, a reopen, a new conversation on a new day, a late failure of an
    # old reply, presence heartbeats
    s.reply(a, "2026-03-02 12:05", ann)
    s.reassign(b, "2026-03-02 12:10", boss, ann)
    s.reply(b, "2026-03-02 12:15", ann)
    s.inbound(c, "2026-03-02 12:20")  # reopens c: cycle 2
    s.accept(c, "2026-03-02 12:21", ann)
    d = s.conversation(wa, "d")
    s.inbound(d, "2026-03-03 07:00")
    with engine.begin() as con:
        con.execute(update(Message).where(Message.id == old).values(status="FAILED"))
    s.event(b, "MESSAGE_FAILED", T("2026-03-02 12:30"), actor=bob, message_id=old)
    s.presence(ann, "ONLINE", "2026-03-02 12:01")
    s.presence(bob, "AWAY", "2026-03-02 12:01")
    r1 = build(db_url, inc, now=T("2026-03-03 08:00"))
    _keyed(r1)
    assert r1.keys_recomputed["agent_daily_metrics"] < 10
    assert_same_as_full(db_url, inc, tmp_path, "2026-03-03 08:00")

    # step 2: only time passes (SLA pending → breached, presence spans to as-of)
    r2 = build(db_url, inc, now=T("2026-03-03 12:00"))
    _keyed(r2)
    assert r2.rows_extracted["messages"] == 0
    assert_same_as_full(db_url, inc, tmp_path, "2026-03-03 12:00")

    # step 3: completions and releases of assignments held across days (concurrency levels)
    s.complete(b, "2026-03-03 12:30", ann)
    s.release(c, "2026-03-03 12:40", ann)
    s.reply(d, "2026-03-03 12:45", ann)
    r3 = build(db_url, inc, now=T("2026-03-03 13:00"))
    _keyed(r3)
    assert_same_as_full(db_url, inc, tmp_path, "2026-03-03 13:00")


def test_changed_names_or_targets_recompute_everything(engine: Engine, db_url: str, tmp_path: Path) -> None:
    s = Seed(engine, sla_first_response_ms=60_000)
    wa, ann = s.channel("wa"), s.user("ann@x.io")
    a = s.conversation(wa, "a")
    s.inbound(a, "2026-03-02 09:00")
    s.accept(a, "2026-03-02 09:01", ann)
    s.reply(a, "2026-03-02 09:03", ann)
    inc = tmp_path / "inc"
    build(db_url, inc, full=True, now=T("2026-03-02 12:00"))
    with engine.begin() as con:
        con.execute(update(User).where(User.id == ann).values(email="ann.new@x.io"))
        con.execute(update(Organization).where(Organization.id == s.org_id).values(sla_first_response_ms=600_000))
    r = build(db_url, inc, now=T("2026-03-02 12:05"))
    assert not r.full and r.keys_recomputed == {}  # everything recomputed
    assert_same_as_full(db_url, inc, tmp_path, "2026-03-02 12:05")
    with queries.connect(inc) as wcon:
        assert wcon.execute("select first_responder_email, first_response_sla_status from conversation_cycles"
                           ).fetchall() == [("ann.new@x.io", "met")]
        assert wcon.execute("select agent_email from agent_daily_metrics").fetchall() == [("ann.new@x.io",)]


def test_rows_committed_late_out_of_id_order_are_picked_up(engine: Engine, db_url: str, tmp_path: Path) -> None:
    s = Seed(engine)
    wa, ann = s.channel("wa"), s.user("ann@x.io")
    a, b = s.conversation(wa, "a"), s.conversation(wa, "b")
    s.inbound(a, "2026-03-02 09:00")
    s.accept(a, "2026-03-02 09:01", ann)
    inc = tmp_path / "inc"
    build(db_url, inc, full=True, now=T("2026-03-02 10:00"))

    def message_ids() -> set[int]:
        with work(inc) as con:
            return {int(r[0]) for r in con.execute("select message_id from int_messages").fetchall()}

    with s.held_open() as late:
        late_reply = late.reply(a, "2026-03-02 10:05", ann)  # takes its ids now, commits after the build
        late.complete(a, "2026-03-02 10:06", ann)
        early = s.inbound(b, "2026-03-02 10:07")  # higher ids, committed first
        r1 = build(db_url, inc, now=T("2026-03-02 10:10"))
        assert late_reply < early and early in message_ids() and late_reply not in message_ids()
        assert not r1.full
    with s.held_open(commit=False) as never:  # its ids are taken, never committed
        rolled_back = never.reply(b, "2026-03-02 10:11", ann)
    s.inbound(b, "2026-03-02 10:12")
    r2 = build(db_url, inc, now=T("2026-03-02 10:20"))
    assert not r2.full and late_reply in message_ids()
    assert_same_as_full(db_url, inc, tmp_path, "2026-03-02 10:20")
    # a gap below the watermark stays watched for (its transaction might still commit) …
    assert rolled_back in warehouse_state(inc)["id_windows"]["messages"]["pending"]
    # … and costs nothing more than a lookup by id on the next builds
    r3 = build(db_url, inc, now=T("2026-03-02 10:30"))
    assert r3.rows_extracted["messages"] == 0


def test_a_warehouse_of_another_format_is_rebuilt_in_full(engine: Engine, db_url: str, tmp_path: Path) -> None:
    s = Seed(engine)
    wa = s.channel("wa")
    s.inbound(s.conversation(wa, "a"), "2026-03-02 09:00")
    inc = tmp_path / "inc"
    build(db_url, inc, full=True, now=T("2026-03-02 09:30"))
    con = duckdb.connect()
    try:  # a state published by another version of the builder
        attach(read_pointer(inc), con, read_only=False)
        con.execute("update _warehouse_meta set value = json_object('format', 'old')")
    finally:
        con.close()
    r = build(db_url, inc, now=T("2026-03-02 10:00"))
    assert r.full
    assert_same_as_full(db_url, inc, tmp_path, "2026-03-02 10:00")


def test_concurrency_levels_carry_over_from_the_last_earlier_day(engine: Engine, db_url: str,
                                                                   tmp_path: Path) -> None:
    """An incremental build starts an agent's level from its last day before the recomputed ones
    (``open_assignments_at_end``), not from its whole history: a level that is not zero, days without
    events in between, an assignment across local midnight, an agent with no earlier day."""
    s = Seed(engine, timezone="Europe/Berlin")
    wa, ann, bob = s.channel("wa"), s.user("ann@x.io"), s.user("bob@x.io")
    a, b = s.conversation(wa, "a"), s.conversation(wa, "b")
    s.inbound(a, "2026-03-02 08:55")
    s.accept(a, "2026-03-02 09:00", ann)  # held until step 2
    s.reply(a, "2026-03-02 09:05", ann)
    s.inbound(b, "2026-03-02 09:55")
    s.accept(b, "2026-03-02 10:00", ann)
    s.release(b, "2026-03-02 10:30", ann)
    inc = tmp_path / "inc"
    build(db_url, inc, full=True, now=T("2026-03-02 12:00"))

    def levels() -> list[tuple[str, str, int, int]]:
        with work(inc) as con:
            return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in con.execute(
                "select u.user_email, c.metric_date, c.concurrent_peak, c.open_assignments_at_end "
                "from int_agent_concurrency_daily c join stg_users u using (user_id) order by 1, 2").fetchall()]

    assert levels() == [("ann@x.io", "2026-03-02", 2, 1)]

    # step 1: two days later (nothing on 03-03); c is held across Berlin midnight; bob's first day
    c, d, e = s.conversation(wa, "c"), s.conversation(wa, "d"), s.conversation(wa, "e")
    s.inbound(d, "2026-03-04 08:55")
    s.accept(d, "2026-03-04 09:00", ann)
    s.inbound(e, "2026-03-04 09:55")
    s.accept(e, "2026-03-04 10:00", bob)
    s.inbound(c, "2026-03-04 22:45")
    s.accept(c, "2026-03-04 22:50", ann)  # 23:50 in Berlin
    s.release(c, "2026-03-04 23:20", ann)  # 00:20 on 03-05 in Berlin
    r1 = build(db_url, inc, now=T("2026-03-05 08:00"))
    _keyed(r1)
    assert r1.keys_recomputed["int_agent_concurrency_daily"] == 2  # ann and bob, from 03-04
    assert levels() == [("ann@x.io", "2026-03-02", 2, 1), ("ann@x.io", "2026-03-04", 3, 3),
                        ("ann@x.io", "2026-03-05", 3, 2), ("bob@x.io", "2026-03-04", 1, 1)]
    assert_same_as_full(db_url, inc, tmp_path, "2026-03-05 08:00")

    # step 2: the assignment held since the first day ends: ann's days are recomputed from 03-02
    s.complete(a, "2026-03-05 09:00", ann)
    r2 = build(db_url, inc, now=T("2026-03-05 10:00"))
    _keyed(r2)
    assert levels()[-2:] == [("ann@x.io", "2026-03-05", 3, 1), ("bob@x.io", "2026-03-04", 1, 1)]
    assert_same_as_full(db_url, inc, tmp_path, "2026-03-05 10:00")
