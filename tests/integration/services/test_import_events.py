"""import-events: the documented example, line-numbered errors, all-or-nothing, idempotency, speed."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from switchboard.db.schema import ConversationEvent, Message, Organization, PresenceEvent, User
from switchboard.errors import InvalidInput
from switchboard.importer import import_events

KEY = b"k" * 32
EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "timeline.jsonl"


def _count(engine: Engine, table: type, *where: object) -> int:
    with engine.connect() as con:
        return int(con.execute(select(func.count()).select_from(table).where(*where)).scalar_one())  # type: ignore[arg-type]


def test_example_timeline_replays_through_the_services(engine: Engine) -> None:
    rep = import_events(engine, EXAMPLE, KEY)
    assert (rep.channels, rep.users, rep.conversations) == (2, 4, 3)
    assert rep.messages == 15
    with engine.connect() as con:
        types = [r[0] for r in con.execute(select(ConversationEvent.type).order_by(ConversationEvent.id))]
        statuses = dict(con.execute(select(Message.provider_message_id, Message.status)).all())
        carla = con.execute(select(ConversationEvent.type, ConversationEvent.occurred_at)
                            .where(ConversationEvent.conversation_id == 1).order_by(ConversationEvent.id)).all()
    for t in ("CREATED", "ACCEPTED", "REASSIGNED", "COMPLETED", "REOPENED", "RELEASED", "MESSAGE_READ",
              "MESSAGE_FAILED", "MESSAGE_DELIVERED"):
        assert t in types
    assert statuses["wamid.out.1"] == "READ" and statuses["wamid.out.5"] == "FAILED"
    assert carla[0] == ("CREATED", datetime(2026, 3, 2, 8, 2, 10, tzinfo=UTC))  # the line's own time
    assert _count(engine, PresenceEvent) == 7
    assert _count(engine, User, User.password_hash.is_not(None)) == 4  # random, never shown
    again = import_events(engine, EXAMPLE, KEY)
    assert again.already_imported and _count(engine, Message) == 15


def _write(tmp: Path, lines: list[str]) -> Path:
    p = tmp / "t.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


HEAD = [
    '{"type":"organization","name":"T","timezone":"UTC"}',
    '{"type":"channel","key":"wa","provider":"whatsapp"}',
    '{"type":"user","email":"a@t.test","role":"agent","permissions":{"wa":["view","send"]}}',
    '{"type":"user","email":"b@t.test","role":"agent","permissions":{"wa":["view","send"]}}',
]


def test_bad_lines_are_reported_with_numbers_and_nothing_is_written(engine: Engine, tmp_path: Path) -> None:
    p = _write(tmp_path, [*HEAD,
                          '{"type":"inbound","at":"2026-03-02T09:00:00+00:00","channel":"wa","contact":"c","text":"x"}',
                          '{"type":"inbound","at":"2026-03-02T09:00:00","channel":"wa","contact":"c","text":"x"}',
                          '{"type":"accept","at":"2026-03-02T09:01:00Z","agent":"zed@t.test","channel":"wa","contact":"c"}',
                          'not json',
                          '{"type":"teleport","at":"2026-03-02T09:01:00Z"}'])
    with pytest.raises(InvalidInput) as e:
        import_events(engine, p, KEY)
    msg = str(e.value)
    assert "nothing was imported" in msg
    assert "line 6: \"at\" must be an ISO-8601 timestamp with an offset" in msg
    assert "line 7: undeclared user 'zed@t.test'" in msg
    assert "line 8: not valid JSON" in msg and "line 9: unknown type 'teleport'" in msg
    assert _count(engine, Organization) == 0


def test_a_line_refused_by_a_service_rolls_back_the_whole_file(engine: Engine, tmp_path: Path) -> None:
    p = _write(tmp_path, [*HEAD,
                          '{"type":"inbound","at":"2026-03-02T09:00:00+00:00","channel":"wa","contact":"c","text":"x"}',
                          '{"type":"accept","at":"2026-03-02T09:01:00+00:00","agent":"a@t.test","channel":"wa","contact":"c"}',
                          '{"type":"accept","at":"2026-03-02T09:02:00+00:00","agent":"b@t.test","channel":"wa","contact":"c"}'])
    with pytest.raises(InvalidInput, match=r"line 7: conversation \d+ was already accepted by a; nothing was imported"):
        import_events(engine, p, KEY)
    assert _count(engine, Organization) == 0 and _count(engine, Message) == 0


def timeline(n_lines: int) -> list[str]:
    """A busy day: customers write, agents accept, reply, complete; customers come back (reopen)."""
    agents = [f"agent{i}@big.test" for i in range(6)]
    out = ['{"type":"organization","name":"Big","timezone":"Europe/Berlin"}',
           '{"type":"channel","key":"wa","provider":"whatsapp"}',
           '{"type":"channel","key":"tg","provider":"telegram"}']
    out += [json.dumps({"type": "user", "email": a, "role": "agent",
                        "permissions": {"wa": ["view", "send"], "tg": ["view", "send"]}}) for a in agents]
    t = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    i = 0
    while len(out) < n_lines:
        ch = "wa" if (i % 150) % 3 else "tg"
        contact = f"cust{i % 150}"
        agent = agents[i % len(agents)]
        base = {"channel": ch, "contact": contact}
        for kind, extra in (("inbound", {"text": f"question {i}"}), ("accept", {"agent": agent}),
                            ("reply", {"agent": agent, "text": f"answer {i}", "message_id": f"o{i}"}),
                            ("status", {"message_id": f"o{i}", "status": "read"}),
                            ("inbound", {"text": "thanks"}), ("complete", {"agent": agent})):
            t += timedelta(seconds=7)
            row = {"type": kind, "at": t.isoformat(), **({} if kind == "status" else base), **extra}
            out.append(json.dumps(row))
        i += 1
    return out


def test_a_busy_timeline_imports_quickly(engine: Engine, tmp_path: Path) -> None:
    p = _write(tmp_path, timeline(1_500))
    started = time.perf_counter()
    rep = import_events(engine, p, KEY)
    took = time.perf_counter() - started
    assert rep.events >= 1_490 and rep.conversations == 150
    assert _count(engine, ConversationEvent, ConversationEvent.type == "REOPENED") > 0
    assert took < 30, took
    print(f"\nimport-events: {rep.lines} lines in {took:.2f} s")
