"""Given rows in Postgres → expected rows in the marts, for every SPEC §4 definition and edge case."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine, update

from switchboard.db.schema import Organization
from tests.warehouse.seed import Seed, T
from warehouse.calendar import business_ms

MIN = 60_000
HOUR = 60 * MIN
WEEKDAYS = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def cycles(w: Any, conv: int) -> list[dict[str, Any]]:
    return w.rows("select * from conversation_cycles where conversation_id = ? order by cycle_number", [conv])


def turns(w: Any, conv: int) -> list[dict[str, Any]]:
    return w.rows("select * from response_times where conversation_id = ? order by cycle_number, turn_number",
                  [conv])


def test_bot_reply_never_counts_as_response(engine: Engine, wh: Any) -> None:
    s = Seed(engine)
    ch, ann = s.channel(), s.user("ann@x.io")
    c = s.conversation(ch)
    s.inbound(c, "2026-03-02 09:00")
    s.bot(c, "2026-03-02 09:00:10")
    s.accept(c, "2026-03-02 09:01", ann)
    s.reply(c, "2026-03-02 09:04", ann)
    w = wh().build(T("2026-03-03 00:00"))
    [cy] = cycles(w, c)
    assert cy["first_response_ms"] == 4 * MIN
    assert cy["first_responder_email"] == "ann@x.io"
    assert cy["count_bot_messages"] == 1 and cy["count_agent_messages"] == 1
    assert cy["queue_ms"] == 1 * MIN
    [t] = turns(w, c)
    assert (t["response_ms"], t["responder_email"], t["is_first_response"]) == (4 * MIN, "ann@x.io", True)


def test_only_bot_answers_leave_the_turn_waiting_then_unanswered(engine: Engine, wh: Any) -> None:
    s = Seed(engine)
    ch, ann = s.channel(), s.user("ann@x.io")
    c = s.conversation(ch)
    s.inbound(c, "2026-03-02 09:00")
    s.bot(c, "2026-03-02 09:00:05")
    w = wh().build(T("2026-03-02 10:00"))
    [t] = turns(w, c)
    assert t["is_waiting"] and not t["is_unanswered"] and t["response_ms"] is None
    s.complete(c, "2026-03-02 10:30", ann)
    w.build(T("2026-03-02 11:00"))
    [t] = turns(w, c)
    assert t["is_unanswered"] and not t["is_waiting"]
    [cy] = cycles(w, c)
    assert cy["first_response_ms"] is None and cy["count_unanswered_turns"] == 1
    assert cy["first_response_sla_status"] == "unanswered"


def test_reply_is_credited_to_the_replier_not_the_assignee(engine: Engine, wh: Any) -> None:
    s = Seed(engine)
    ch, ann, bob = s.channel(), s.user("ann@x.io"), s.user("bob@x.io")
    c = s.conversation(ch)
    s.inbound(c, "2026-03-02 09:00")
    s.accept(c, "2026-03-02 09:01", ann)
    s.reply(c, "2026-03-02 09:03", bob, body="12345")
    w = wh().build(T("2026-03-03 00:00"))
    [cy] = cycles(w, c)
    assert cy["accepted_by_email"] == "ann@x.io" and cy["first_responder_email"] == "bob@x.io"
    daily = {r["agent_email"]: r for r in w.rows("select * from agent_daily_metrics")}
    assert daily["bob@x.io"]["count_first_responses"] == 1
    assert daily["bob@x.io"]["avg_first_response_ms"] == 3 * MIN
    assert daily["bob@x.io"]["total_messages_sent"] == 1
    assert daily["bob@x.io"]["avg_message_length_chars"] == 5
    assert daily["ann@x.io"]["count_first_responses"] == 0
    assert daily["ann@x.io"]["conversations_accepted"] == 1
    assert daily["ann@x.io"]["total_messages_received"] == 0  # the inbound arrived before she accepted


def test_reopen_starts_a_new_cycle_and_resolution_is_per_cycle(engine: Engine, wh: Any) -> None:
    s = Seed(engine)
    ch, ann, bob = s.channel(), s.user("ann@x.io"), s.user("bob@x.io")
    c = s.conversation(ch)
    s.inbound(c, "2026-03-02 09:00")
    s.accept(c, "2026-03-02 09:02", ann)
    s.reply(c, "2026-03-02 09:05", ann)
    s.complete(c, "2026-03-02 09:30", ann)
    s.inbound(c, "2026-03-04 12:00")  # reopens
    s.accept(c, "2026-03-04 12:10", bob)
    s.reply(c, "2026-03-04 12:20", bob)
    s.complete(c, "2026-03-04 13:00", bob)
    w = wh().build(T("2026-03-05 00:00"))
    c1, c2 = cycles(w, c)
    assert (c1["cycle_number"], c1["is_reopened"], c1["resolution_ms"], c1["first_response_ms"]) == (
        1, False, 30 * MIN, 5 * MIN)
    assert (c1["queue_ms"], c1["handle_ms"], c1["completed_by_email"]) == (2 * MIN, 28 * MIN, "ann@x.io")
    assert (c2["cycle_number"], c2["is_reopened"], c2["resolution_ms"], c2["first_response_ms"]) == (
        2, True, 60 * MIN, 20 * MIN)
    assert (c2["queue_ms"], c2["handle_ms"], c2["first_responder_email"]) == (10 * MIN, 50 * MIN, "bob@x.io")
    assert c2["started_at"] == T("2026-03-04 12:00")


def test_customer_turns_and_unanswered_turn_at_cycle_end(engine: Engine, wh: Any) -> None:
    s = Seed(engine)
    ch, ann = s.channel(), s.user("ann@x.io")
    c = s.conversation(ch)
    s.inbound(c, "2026-03-02 09:00")
    s.inbound(c, "2026-03-02 09:01")  # same turn
    s.reply(c, "2026-03-02 09:10", ann)
    s.reply(c, "2026-03-02 09:11", ann)  # a second reply answers nothing
    s.inbound(c, "2026-03-02 09:20")
    s.reply(c, "2026-03-02 09:22", ann, status="FAILED")  # never reached the customer
    s.reply(c, "2026-03-02 09:25", ann)
    s.inbound(c, "2026-03-02 09:40")
    s.complete(c, "2026-03-02 09:45", ann)
    w = wh().build(T("2026-03-03 00:00"))
    got = [(t["turn_number"], t["count_customer_messages"], t["response_ms"], t["is_unanswered"])
           for t in turns(w, c)]
    assert got == [(1, 2, 10 * MIN, False), (2, 1, 5 * MIN, False), (3, 1, None, True)]
    [cy] = cycles(w, c)
    assert (cy["count_turns"], cy["count_unanswered_turns"]) == (3, 1)
    [ch_day] = w.rows("select * from channel_daily_metrics")
    assert ch_day["count_unanswered_turns"] == 1 and ch_day["count_responses"] == 2
    assert ch_day["median_response_time_ms"] == 7.5 * MIN
    assert ch_day["min_response_time_ms"] == 5 * MIN and ch_day["max_response_time_ms"] == 10 * MIN


def test_business_hours_across_night_and_weekend(engine: Engine, wh: Any) -> None:
    s = Seed(engine, timezone="Europe/Berlin", business_hours=WEEKDAYS)
    ch, ann = s.channel(), s.user("ann@x.io")
    c = s.conversation(ch)
    s.inbound(c, "2026-03-06 16:50+01:00")  # Friday 16:50 local
    s.reply(c, "2026-03-09 09:10+01:00", ann)  # Monday 09:10 local
    w = wh().build(T("2026-03-10 00:00"))
    [t] = turns(w, c)
    assert t["response_ms"] == (2 * 24 * 60 + 16 * 60 + 20) * MIN
    assert t["response_business_ms"] == 20 * MIN
    assert business_ms(T("2026-03-06 16:50+01:00"), T("2026-03-09 09:10+01:00"), WEEKDAYS, "Europe/Berlin") == 20 * MIN
    [cy] = cycles(w, c)
    assert cy["first_response_business_ms"] == 20 * MIN


def test_business_hours_on_a_holiday_and_a_daylight_saving_night(engine: Engine, wh: Any) -> None:
    hours = {"sat": [["22:00", "24:00"]], "sun": [["00:00", "04:00"]], "holidays": ["2026-03-31"],
             "tue": [["09:00", "17:00"]], "mon": [["09:00", "17:00"]]}
    s = Seed(engine, timezone="Europe/Berlin", business_hours=hours)
    ch, ann = s.channel(), s.user("ann@x.io")
    c1, c2 = s.conversation(ch, "a"), s.conversation(ch, "b")
    # 2026-03-29: clocks jump 02:00 → 03:00 in Berlin; Sat 22:00 CET → Sun 04:00 CEST is 5 real hours
    s.inbound(c1, "2026-03-28 22:00+01:00")
    s.reply(c1, "2026-03-29 04:00+02:00", ann)
    # Monday 16:00 → Wednesday 10:00 with Tuesday a holiday: 1 h Monday (Wed is closed)
    s.inbound(c2, "2026-03-30 16:00+02:00")
    s.reply(c2, "2026-04-01 10:00+02:00", ann)
    w = wh().build(T("2026-04-02 00:00"))
    [t1], [t2] = turns(w, c1), turns(w, c2)
    assert t1["response_ms"] == 5 * HOUR and t1["response_business_ms"] == 5 * HOUR
    assert t2["response_business_ms"] == 1 * HOUR
    assert t1["turn_started_local_date"] == date(2026, 3, 28)


def test_channel_override_of_business_hours(engine: Engine, wh: Any) -> None:
    s = Seed(engine, timezone="UTC", business_hours=WEEKDAYS)
    org_ch = s.channel("org")
    night = s.channel("night", business_hours={d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu",
                                                                                   "fri", "sat", "sun")})
    ann = s.user("ann@x.io")
    a, b = s.conversation(org_ch, "a"), s.conversation(night, "b")
    for c in (a, b):
        s.inbound(c, "2026-03-02 20:00")  # Monday night
        s.reply(c, "2026-03-03 10:00", ann)
    w = wh().build(T("2026-03-04 00:00"))
    assert turns(w, a)[0]["response_business_ms"] == 1 * HOUR
    assert turns(w, b)[0]["response_business_ms"] == 14 * HOUR


def test_calendar_change_applies_to_history_on_next_incremental_build(engine: Engine, wh: Any) -> None:
    s = Seed(engine, timezone="UTC", business_hours=WEEKDAYS)
    ch, ann = s.channel(), s.user("ann@x.io")
    c = s.conversation(ch)
    s.inbound(c, "2026-03-02 08:00")
    s.reply(c, "2026-03-02 10:00", ann)
    w = wh().build(T("2026-03-03 00:00"))
    assert turns(w, c)[0]["response_business_ms"] == 1 * HOUR
    with engine.begin() as con:
        con.execute(update(Organization).where(Organization.id == s.org_id).values(
            business_hours={"mon": [["07:00", "17:00"]]}))
    w.build(T("2026-03-03 01:00"), full=False)
    assert turns(w, c)[0]["response_business_ms"] == 2 * HOUR


def test_days_are_bucketed_in_the_organization_timezone(engine: Engine, wh: Any) -> None:
    s = Seed(engine, timezone="America/New_York")
    ch, ann = s.channel(), s.user("ann@x.io")
    c = s.conversation(ch)
    s.inbound(c, "2026-03-03 02:50")  # 21:50 on March 2nd in New York
    s.accept(c, "2026-03-03 02:55", ann)
    s.reply(c, "2026-03-03 03:00", ann)  # 22:00 on March 2nd
    s.reply(c, "2026-03-03 05:30", ann)  # 00:30 on March 3rd
    w = wh().build(T("2026-03-04 00:00"))
    days = {r["metric_date"]: r for r in w.rows("select * from agent_daily_metrics")}
    assert set(days) == {date(2026, 3, 2), date(2026, 3, 3)}
    assert days[date(2026, 3, 2)]["count_responses"] == 1 and days[date(2026, 3, 3)]["total_messages_sent"] == 1
    [cy] = cycles(w, c)
    assert cy["started_local_date"] == date(2026, 3, 2)
    [hv] = w.rows("select * from hourly_volume where total_messages_received > 0")
    assert (hv["metric_date"], hv["hour_of_day"], hv["day_of_week"]) == (date(2026, 3, 2), 21, 1)


def test_concurrency_peak_online_minutes_and_messages_received(engine: Engine, wh: Any) -> None:
    s = Seed(engine)
    ch, ann, boss = s.channel(), s.user("ann@x.io"), s.user("boss@x.io", "manager")
    a, b, c = (s.conversation(ch, n) for n in "abc")
    for conv, at in ((a, "09:00"), (b, "09:05"), (c, "09:10")):
        s.inbound(conv, f"2026-03-02 {at}")
    s.accept(a, "2026-03-02 09:01", ann)
    s.accept(b, "2026-03-02 09:06", ann)
    s.inbound(a, "2026-03-02 09:07")  # arrives while ann holds it
    s.release(a, "2026-03-02 09:08", ann)
    s.reassign(c, "2026-03-02 09:11", boss, ann)
    s.inbound(c, "2026-03-02 09:12")
    s.complete(b, "2026-03-02 09:20", ann)
    for minute in range(0, 6):
        s.presence(ann, "ONLINE", f"2026-03-02 09:0{minute}")
    s.presence(ann, "AWAY", "2026-03-02 09:06")
    s.presence(ann, "ONLINE", "2026-03-02 23:58")  # counts until midnight, then 2 min next day (cap 5 min)
    w = wh().build(T("2026-03-03 12:00"))
    days = {(r["agent_email"], r["metric_date"]): r for r in w.rows("select * from agent_daily_metrics")}
    d = days[("ann@x.io", date(2026, 3, 2))]
    assert d["concurrent_peak"] == 2
    assert (d["conversations_accepted"], d["conversations_reassigned_to"], d["conversations_completed"]) == (2, 1, 1)
    assert d["total_messages_received"] == 2
    assert d["total_online_minutes"] == 8.0  # 09:00 → 09:06 and 23:58 → 24:00
    assert days[("ann@x.io", date(2026, 3, 3))]["total_online_minutes"] == 3.0
    assert d["count_handled"] == 1 and d["avg_handle_ms"] == 14 * MIN


def test_sla_statuses_and_live_queue(engine: Engine, wh: Any) -> None:
    s = Seed(engine, sla_first_response_ms=5 * MIN, sla_resolution_ms=HOUR)
    ch, ann = s.channel(), s.user("ann@x.io")
    met, late, waiting, fresh = (s.conversation(ch, n) for n in ("met", "late", "waiting", "fresh"))
    s.inbound(met, "2026-03-02 09:00")
    s.accept(met, "2026-03-02 09:01", ann)
    s.reply(met, "2026-03-02 09:02", ann)
    s.complete(met, "2026-03-02 09:30", ann)
    s.inbound(late, "2026-03-02 09:00")
    s.reply(late, "2026-03-02 09:10", ann)
    s.inbound(waiting, "2026-03-02 09:00")
    s.inbound(fresh, "2026-03-02 11:58")
    w = wh().build(T("2026-03-02 12:00"))
    status = {r["conversation_id"]: (r["first_response_sla_status"], r["resolution_sla_status"])
              for r in w.rows("select * from conversation_cycles")}
    assert status == {met: ("met", "met"), late: ("breached", "breached"), waiting: ("breached", "breached"),
                      fresh: ("pending", "pending")}
    [day] = w.rows("select * from sla_daily")
    assert (day["count_cycles"], day["count_first_response_met"], day["count_first_response_breached"],
            day["count_first_response_pending"]) == (4, 1, 2, 1)
    assert day["first_response_sla_share"] == 1 / 3
    live = {r["conversation_id"]: r for r in w.rows("select * from live_queue")}
    assert set(live) == {late, waiting, fresh}
    assert live[waiting]["is_unattended"] and live[waiting]["waiting_ms"] == 3 * HOUR
    assert not live[late]["is_unattended"] and live[late]["is_unassigned"]


def test_resolution_time_per_agent(engine: Engine, wh: Any) -> None:
    """Credited to the agent who completed the cycle, on the local day of completion (Berlin)."""
    s = Seed(engine, timezone="Europe/Berlin", business_hours={"mon": [["09:00", "17:00"]]})
    ch, ann, bob = s.channel(), s.user("ann@x.io"), s.user("bob@x.io")
    a, b = s.conversation(ch, "a"), s.conversation(ch, "b")
    s.inbound(a, "2026-03-02 08:00")  # 09:00 Berlin
    s.accept(a, "2026-03-02 08:01", ann)
    s.complete(a, "2026-03-02 08:30", ann)  # 30 min, all in business hours
    s.inbound(b, "2026-03-02 15:30")  # 16:30 Berlin: 30 business minutes left on Monday
    s.accept(b, "2026-03-02 15:31", bob)
    s.complete(b, "2026-03-02 23:30", ann)  # 00:30 Berlin on Tuesday: credited to ann on Tuesday
    w = wh().build(T("2026-03-03 12:00"))
    daily = {(r["agent_email"], r["metric_date"]): r for r in w.rows("select * from agent_daily_metrics")}
    monday, tuesday = daily[("ann@x.io", date(2026, 3, 2))], daily[("ann@x.io", date(2026, 3, 3))]
    assert (monday["count_resolutions"], monday["avg_resolution_ms"], monday["max_resolution_business_ms"]) == (
        1, 30 * MIN, 30 * MIN)
    assert (tuesday["count_resolutions"], tuesday["median_resolution_ms"], tuesday["p90_resolution_business_ms"]) == (
        1, 8 * HOUR, 30 * MIN)
    assert daily[("bob@x.io", date(2026, 3, 2))]["count_resolutions"] == 0
