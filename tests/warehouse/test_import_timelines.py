"""import-events timelines replayed through the real services → hand-computed mart rows."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from switchboard.importer import import_events
from switchboard.settings import get_settings
from tests.warehouse.conftest import work
from tests.warehouse.seed import T
from tests.warehouse.test_build import MODELS
from tests.warehouse.test_build import test_model_keys as check_model_keys
from warehouse.build import build

MIN = 60_000
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "timeline.jsonl"

TIMELINE: list[dict[str, Any]] = [
    {"type": "organization", "name": "Timeline Co", "timezone": "Europe/Berlin",
     "business_hours": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
     "sla_first_response_ms": 5 * MIN, "sla_resolution_ms": 60 * MIN},
    {"type": "channel", "key": "wa", "provider": "whatsapp"},
    {"type": "user", "email": "alice@t.test", "role": "agent", "permissions": {"wa": ["view", "send"]}},
    {"type": "user", "email": "boss@t.test", "role": "manager"},
    # cycle 1: Friday evening → Monday morning, the manager answers first, a turn left unanswered
    {"type": "inbound", "at": "2026-03-06T16:50:00+01:00", "channel": "wa", "contact": "491", "text": "hello?"},
    {"type": "bot_reply", "at": "2026-03-06T16:50:05+01:00", "channel": "wa", "contact": "491", "text": "hi!"},
    {"type": "accept", "at": "2026-03-06T16:55:00+01:00", "agent": "alice@t.test", "channel": "wa", "contact": "491"},
    {"type": "reply", "at": "2026-03-09T09:10:00+01:00", "agent": "boss@t.test", "channel": "wa", "contact": "491",
     "text": "sorry for the wait"},
    {"type": "inbound", "at": "2026-03-09T09:20:00+01:00", "channel": "wa", "contact": "491", "text": "and?"},
    {"type": "reply", "at": "2026-03-09T09:30:00+01:00", "agent": "alice@t.test", "channel": "wa", "contact": "491",
     "text": "done"},
    {"type": "inbound", "at": "2026-03-09T09:40:00+01:00", "channel": "wa", "contact": "491", "text": "thanks"},
    {"type": "complete", "at": "2026-03-09T09:45:00+01:00", "agent": "alice@t.test", "channel": "wa", "contact": "491"},
    # cycle 2: the customer writes again the next day
    {"type": "inbound", "at": "2026-03-10T10:00:00+01:00", "channel": "wa", "contact": "491", "text": "one more"},
    {"type": "accept", "at": "2026-03-10T10:01:00+01:00", "agent": "alice@t.test", "channel": "wa", "contact": "491"},
    {"type": "reply", "at": "2026-03-10T10:04:00+01:00", "agent": "alice@t.test", "channel": "wa", "contact": "491",
     "text": "sure"},
    {"type": "complete", "at": "2026-03-10T10:30:00+01:00", "agent": "alice@t.test", "channel": "wa", "contact": "491"},
]


def _rows(path: Path, sql: str) -> list[dict[str, Any]]:
    with work(path) as con:  # (intermediate models too)
        cur = con.execute(sql)
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_timeline_gives_the_hand_computed_rows(engine: Engine, db_url: str, tmp_path: Path) -> None:
    src = tmp_path / "timeline.jsonl"
    src.write_text("\n".join(json.dumps(line) for line in TIMELINE) + "\n")
    import_events(engine, src, get_settings().secret_key_bytes())
    path = tmp_path / "w"
    build(db_url, path, full=True, now=T("2026-03-11 00:00"))

    c1, c2 = _rows(path, "select * from conversation_cycles order by cycle_number")
    assert (c1["first_responder_email"], c1["accepted_by_email"]) == ("boss@t.test", "alice@t.test")
    assert c1["first_response_ms"] == (2 * 24 * 60 + 16 * 60 + 20) * MIN  # Fri 16:50 → Mon 09:10
    assert c1["first_response_business_ms"] == 20 * MIN  # 10 min Friday + 10 min Monday
    assert (c1["queue_ms"], c1["queue_business_ms"]) == (5 * MIN, 5 * MIN)
    assert c1["resolution_ms"] == (2 * 24 * 60 + 16 * 60 + 55) * MIN and c1["resolution_business_ms"] == 55 * MIN
    assert c1["handle_ms"] == (2 * 24 * 60 + 16 * 60 + 50) * MIN
    assert (c1["count_turns"], c1["count_unanswered_turns"], c1["count_bot_messages"]) == (3, 1, 1)
    assert (c1["first_response_sla_status"], c1["first_response_business_sla_status"]) == ("breached", "breached")
    assert c1["started_local_date"] == date(2026, 3, 6)
    assert (c2["is_reopened"], c2["first_response_ms"], c2["queue_ms"], c2["resolution_ms"]) == (
        True, 4 * MIN, 1 * MIN, 30 * MIN)
    assert (c2["first_response_sla_status"], c2["resolution_sla_status"]) == ("met", "met")

    turns = _rows(path, "select * from response_times order by cycle_number, turn_number")
    assert [(t["cycle_number"], t["turn_number"], t["responder_email"], t["response_ms"], t["is_unanswered"])
            for t in turns] == [
        (1, 1, "boss@t.test", (2 * 24 * 60 + 16 * 60 + 20) * MIN, False),
        (1, 2, "alice@t.test", 10 * MIN, False),
        (1, 3, None, None, True),
        (2, 1, "alice@t.test", 4 * MIN, False),
    ]
    daily = {(r["agent_email"], r["metric_date"]): r for r in _rows(path, "select * from agent_daily_metrics")}
    assert daily[("boss@t.test", date(2026, 3, 9))]["count_first_responses"] == 1
    alice_mon = daily[("alice@t.test", date(2026, 3, 9))]
    assert (alice_mon["count_responses"], alice_mon["median_response_time_ms"], alice_mon["conversations_completed"]) \
        == (1, 10 * MIN, 1)
    alice_tue = daily[("alice@t.test", date(2026, 3, 10))]
    assert (alice_tue["avg_first_response_ms"], alice_tue["conversations_accepted"]) == (4 * MIN, 1)
    [sla] = _rows(path, "select * from sla_daily where metric_date = '2026-03-10'")
    assert sla["first_response_sla_share"] == 1.0


@pytest.fixture
def example_warehouse(engine: Engine, db_url: str, tmp_path: Path) -> Path:
    import_events(engine, EXAMPLE, get_settings().secret_key_bytes())
    path = tmp_path / "example"
    build(db_url, path, full=True, now=T("2026-03-03 00:00"))
    return path


def test_documented_example_timeline_builds_and_passes_key_tests(example_warehouse: Path) -> None:
    for model in MODELS:
        if model.name not in ("int_agent_online_daily", "int_agent_concurrency_daily", "live_queue"):
            check_model_keys(example_warehouse, model)
    # every agent went online once (08:55, 08:58, 09:01) and changed state more than 5 minutes later:
    # each online span is capped at the presence gap (5 minutes)
    online = _rows(example_warehouse, "select u.user_email, o.metric_date, o.total_online_minutes "
                                      "from int_agent_online_daily o join stg_users u using (user_id) order by 1")
    assert [(r["user_email"], r["metric_date"], r["total_online_minutes"]) for r in online] == [
        (f"{name}@acme.example", date(2026, 3, 2), 5.0) for name in ("alice", "bob", "chen")]
    # nobody ever held two conversations at once
    peaks = _rows(example_warehouse, "select u.user_email, c.concurrent_peak from int_agent_concurrency_daily c "
                                     "join stg_users u using (user_id) order by 1")
    assert [(r["user_email"], r["concurrent_peak"]) for r in peaks] == [
        (f"{name}@acme.example", 1) for name in ("alice", "bob", "chen")]
    # Carla's reopened conversation was released after a reply that failed: open, unassigned, and her
    # 14:05 turn still waits for a reply
    [live] = _rows(example_warehouse, "select * from live_queue")
    assert (live["conversation_status"], live["is_unassigned"], live["is_unattended"], live["cycle_number"]) == (
        "PENDING", True, True, 2)
    assert live["waiting_since"] == T("2026-03-02T14:05:00+01:00")
