"""The worked example of docs/metrics.md, built for real: every figure the document states is checked here.

Change the document and this test together."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import pytest
from sqlalchemy import Engine

from tests.warehouse.seed import Seed, T
from warehouse import queries

MIN = 60_000
WEEKDAYS = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def example(engine: Engine) -> dict[str, int]:
    """docs/metrics.md "A worked example": Monday 2 and Tuesday 3 March 2026, Europe/Berlin (UTC+1)."""
    s = Seed(engine, timezone="Europe/Berlin", business_hours=WEEKDAYS, sla_first_response_ms=15 * MIN,
             sla_resolution_ms=24 * 60 * MIN)
    ch = s.channel()
    ana, ben, mia = s.user("ana@example.com"), s.user("ben@example.com"), s.user("mia@example.com", "manager")
    a, b = s.conversation(ch, "Alice"), s.conversation(ch, "Bob")
    # conversation A: a bot greeting, two turns, a reassignment
    s.inbound(a, "2026-03-02 09:00+01:00", "Hi, my order has not arrived")
    s.bot(a, "2026-03-02 09:00:30+01:00", "Thanks! An agent will be with you shortly.")
    s.inbound(a, "2026-03-02 09:02+01:00", "Order 1234")
    s.accept(a, "2026-03-02 09:04+01:00", ana)
    s.reply(a, "2026-03-02 09:06+01:00", ana, "Let me check that for you.")
    s.inbound(a, "2026-03-02 09:10+01:00", "Any news?")
    s.reassign(a, "2026-03-02 09:12+01:00", mia, ben)
    s.reply(a, "2026-03-02 09:15+01:00", ben, "It ships today.")
    s.complete(a, "2026-03-02 09:30+01:00", ben)
    # conversation B: late on Monday, answered on Tuesday morning, then reopened and left unanswered
    s.inbound(b, "2026-03-02 16:50+01:00", "Can I change my address?")
    s.accept(b, "2026-03-02 16:55+01:00", ana)
    s.reply(b, "2026-03-03 09:10+01:00", ana, "Yes, done.")
    s.complete(b, "2026-03-03 09:20+01:00", ana)
    s.inbound(b, "2026-03-03 10:00+01:00", "Thanks!")  # reopens: cycle 2
    s.accept(b, "2026-03-03 10:05+01:00", ben)
    s.complete(b, "2026-03-03 10:30+01:00", ben)
    return {"a": a, "b": b, "ana": ana, "ben": ben}


def _by(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in rows}


def test_the_worked_example_of_docs_metrics(engine: Engine, wh: Any) -> None:
    ids = example(engine)
    w = wh().build(T("2026-03-04 00:00"))
    cycles = _by(w.rows("select * from conversation_cycles"), "conversation_id", "cycle_number")
    a1, b1, b2 = cycles[(ids["a"], 1)], cycles[(ids["b"], 1)], cycles[(ids["b"], 2)]
    # first response (per cycle)
    assert (a1["first_response_ms"], a1["first_responder_email"]) == (6 * MIN, "ana@example.com")
    assert (b1["first_response_ms"], b1["first_response_business_ms"]) == (980 * MIN, 20 * MIN)
    assert b2["first_response_ms"] is None
    assert [a1["first_response_sla_status"], b1["first_response_sla_status"], b2["first_response_sla_status"]] \
        == ["met", "breached", "unanswered"]
    assert b1["first_response_business_sla_status"] == "breached"  # 20 business minutes > 15
    # queue, handle, resolution
    assert [c["queue_ms"] for c in (a1, b1, b2)] == [4 * MIN, 5 * MIN, 5 * MIN]
    assert [c["handle_ms"] for c in (a1, b1, b2)] == [18 * MIN, 985 * MIN, 25 * MIN]
    assert [c["handled_by_email"] for c in (a1, b1, b2)] == ["ben@example.com", "ana@example.com", "ben@example.com"]
    assert [c["resolution_ms"] for c in (a1, b1, b2)] == [30 * MIN, 990 * MIN, 30 * MIN]
    assert b1["resolution_business_ms"] == 30 * MIN
    # response time (per customer turn)
    turns = w.rows("select * from response_times order by turn_started_at")
    assert [(t["response_ms"], t["responder_email"], t["is_unanswered"]) for t in turns] == [
        (6 * MIN, "ana@example.com", False), (5 * MIN, "ben@example.com", False),
        (980 * MIN, "ana@example.com", False), (None, None, True)]
    # the statistics a manager reads for the two days
    stats = queries.time_metric_stats(w.path, ids_org(w), "response", date(2026, 3, 2), date(2026, 3, 3))
    row = stats.row(0, named=True)
    assert (row["count"], row["median_ms"], row["min_ms"], row["max_ms"]) == (3, 6 * MIN, 5 * MIN, 980 * MIN)
    assert row["mean_ms"] == pytest.approx(991 / 3 * MIN)  # 330.3 min
    assert row["p90_ms"] == pytest.approx(785.2 * MIN)
    first = queries.time_metric_stats(w.path, ids_org(w), "first_response", date(2026, 3, 2), date(2026, 3, 3))
    f = first.row(0, named=True)
    assert (f["count"], f["median_ms"], f["p90_ms"]) == (2, 493 * MIN, pytest.approx(882.6 * MIN))
    biz = queries.time_metric_stats(w.path, ids_org(w), "first_response", date(2026, 3, 2), date(2026, 3, 3),
                                    business_hours=True).row(0, named=True)
    assert (biz["median_ms"], biz["p90_ms"]) == (13 * MIN, pytest.approx(18.6 * MIN))
    # SLA: one met, one breached, one unanswered over the two days (per day of cycle start: 50 %, then 0 %)
    sla = w.rows("select metric_date, count_first_response_met as met, count_first_response_breached as breached, "
                 "count_first_response_unanswered as unanswered, first_response_sla_share as share "
                 "from sla_daily order by metric_date")
    assert [(r["met"], r["breached"], r["unanswered"], r["share"]) for r in sla] == [(1, 1, 0, 0.5), (0, 0, 1, 0.0)]
    # agent_daily_metrics
    daily = _by(w.rows("select * from agent_daily_metrics"), "agent_email", "metric_date")
    ana_mon, ana_tue = daily[("ana@example.com", date(2026, 3, 2))], daily[("ana@example.com", date(2026, 3, 3))]
    ben_mon, ben_tue = daily[("ben@example.com", date(2026, 3, 2))], daily[("ben@example.com", date(2026, 3, 3))]
    assert (ana_mon["conversations_accepted"], ana_mon["total_messages_sent"], ana_mon["concurrent_peak"]) == (2, 1, 1)
    assert (ana_tue["conversations_completed"], ana_tue["total_messages_sent"]) == (1, 1)
    assert ana_tue["median_first_response_ms"] == 980 * MIN  # credited on the day of the reply
    assert (ben_mon["conversations_reassigned_to"], ben_mon["conversations_completed"]) == (1, 1)
    assert (ben_tue["conversations_accepted"], ben_tue["conversations_completed"], ben_tue["total_messages_sent"]) \
        == (1, 1, 0)


def ids_org(w: Any) -> int:
    return int(w.rows("select organization_id from conversation_cycles limit 1")[0]["organization_id"])


def test_headline_figures_and_drill_down_on_the_worked_example(engine: Engine, wh: Any) -> None:
    ids = example(engine)
    w = wh().build(T("2026-03-04 00:00"))
    org, mon, tue = ids_org(w), date(2026, 3, 2), date(2026, 3, 3)
    h = queries.headline(w.path, org, mon, tue)
    assert (h["count_started"], h["count_completed"], h["count_sla_met"], h["count_sla_decided"],
            h["count_unanswered_turns"]) == (3, 3, 1, 3, 1)
    assert h["first_response_sla_share"] == pytest.approx(1 / 3)
    assert (h["median_first_response_ms"], h["median_response_ms"]) == (493 * MIN, 6 * MIN)
    ana = queries.headline(w.path, org, mon, tue, agent="ana@example.com")
    assert (ana["count_started"], ana["median_first_response_ms"], ana["median_response_ms"]) == \
        (2, 493 * MIN, 493 * MIN)
    assert queries.headline(w.path, org, mon, mon)["count_started"] == 2  # the previous-period comparison's unit

    def cycles(**kw: Any) -> list[tuple[int, int]]:
        rows = queries.cycle_rows(w.path, org, mon, tue, **kw)
        found = [(r["conversation_id"], r["cycle_number"]) for r in rows.iter_rows(named=True)]
        assert queries.cycle_count(w.path, org, mon, tue, **kw) == len(found)  # the same filters, counted
        if found:  # the first rows of the same list
            first = queries.cycle_rows(w.path, org, mon, tue, limit=1, **kw)
            assert [(r["conversation_id"], r["cycle_number"]) for r in first.iter_rows(named=True)] == found[:1]
        return found

    a, b = ids["a"], ids["b"]
    assert cycles() == [(a, 1), (b, 1), (b, 2)]
    assert cycles(agent="ben@example.com") == [(a, 1), (b, 2)]  # handled/completed A, accepted B's 2nd cycle
    assert cycles(day=tue) == [(b, 2)]
    assert cycles(weekday=1, hour=9) == [(a, 1)]  # both of Alice's turns started Monday 09:xx
    assert cycles(weekday=1, hour=16) == [(b, 1)]
    assert cycles(weekday=2) == [(b, 2)]
    assert cycles(sla_missed="first_response") == [(b, 1), (b, 2)]
    assert cycles(sla_missed="resolution") == []
    values = queries.time_metric_values(w.path, org, "response", mon, tue)
    assert values["value_ms"].to_list() == [5 * MIN, 6 * MIN, 980 * MIN]
    assert queries.time_metric_values(w.path, org, "response", mon, tue, agent="ben@example.com")["value_ms"] \
        .to_list() == [5 * MIN]


def _expected_box(v: list[float]) -> dict[str, float]:
    s = pl.Series(v, dtype=pl.Float64)
    p5, q1, med, q3, p95 = (float(s.quantile(q, "linear") or 0) for q in (0.05, 0.25, 0.5, 0.75, 0.95))
    return {"count": len(v), "min_ms": min(v), "p5_ms": p5, "q1_ms": q1, "median_ms": med, "q3_ms": q3,
            "p95_ms": p95, "max_ms": max(v)}


@pytest.mark.parametrize("log_scale", [True, False])
def test_the_distribution_is_aggregated_from_the_same_values(engine: Engine, wh: Any, log_scale: bool) -> None:
    """The page's histogram and box plot, computed in the warehouse, agree with the values themselves."""
    example(engine)
    w = wh().build(T("2026-03-04 00:00"))
    org, mon, tue = ids_org(w), date(2026, 3, 2), date(2026, 3, 3)
    for metric in ("response", "first_response", "resolution"):
        values = queries.time_metric_values(w.path, org, metric, mon, tue)
        dist = queries.time_metric_distribution(w.path, org, metric, mon, tue, log_scale=log_scale)
        v = [float(x) for x in values["value_ms"]]
        summary = dist["summary"].row(0, named=True)
        s = pl.Series(v, dtype=pl.Float64)
        assert (summary["count"], summary["count_zero"], summary["min_ms"], summary["max_ms"]) == \
            (len(v), sum(x == 0 for x in v), min(v), max(v))
        assert summary["median_ms"] == pytest.approx(s.quantile(0.5, "linear"))
        assert summary["p90_ms"] == pytest.approx(s.quantile(0.9, "linear"))
        bins = dist["bins"].rows(named=True)
        drawn = [x for x in v if x > 0] if log_scale else v
        assert sum(b["count"] for b in bins) == len(drawn)
        assert [b["bin"] for b in bins] == list(range(bins[0]["bin"], bins[-1]["bin"] + 1))  # empty ones too
        assert bins[0]["count"] and bins[-1]["count"]
        for b in bins:  # every value in exactly the bin that counts it
            inside = [x for x in drawn if b["lower_ms"] <= x < b["upper_ms"]
                      or (not log_scale and b is bins[-1] and x == b["upper_ms"])]
            assert len(inside) == b["count"], (metric, b)
        agents = {r["agent"]: r for r in dist["agents"].rows(named=True)}
        by_agent: dict[Any, list[float]] = {}
        for a, x in zip(values["agent"], values["value_ms"], strict=True):
            by_agent.setdefault(a, []).append(float(x))
        assert set(agents) == set(by_agent)
        for a, xs in by_agent.items():
            got = {k: val for k, val in agents[a].items() if k != "agent"}
            assert got == pytest.approx(_expected_box(xs)), (metric, a)
    # one agent's, and a range with no values
    ben = queries.time_metric_distribution(w.path, org, "response", mon, tue, agent="ben@example.com")
    assert ben["summary"]["count"].to_list() == [1] and ben["agents"]["agent"].to_list() == ["ben@example.com"]
    empty = queries.time_metric_distribution(w.path, org, "response", date(2025, 1, 1), date(2025, 1, 2))
    assert empty["summary"]["count"].to_list() == [0] and empty["bins"].is_empty() and empty["agents"].is_empty()
