"""import-events: the documented example, line-numbered errors, all-or-nothing, idempotency (speed:
bench/bench_import.py)."""

from __future__ import annotations

import json
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
        statuses: dict[str | None, str] = {r[0]: r[1] for r in con.execute(
            select(Message.provider_message_id, Message.status))}
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


def test_a_busy_timeline_imports(engine: Engine, tmp_path: Path) -> None:
    """A busy file replays completely (its speed is measured in bench/, not asserted here)."""
    p = _write(tmp_path, timeline(1_500))
    rep = import_events(engine, p, KEY)
    assert rep.events >= 1_490 and rep.conversations == 150
    assert _count(engine, ConversationEvent, ConversationEvent.type == "REOPENED") > 0


def _demo(tmp: Path, org: str, days: int, per_weekday: int) -> Path:
    from switchboard.cli.demo_history import HABITS, HistoryChannel, write_timeline

    dom = org.lower().replace(" ", "")
    users = [(f"lead@{dom}.test", "Lead", "manager")] + [(f"agent{i}@{dom}.test", f"Agent {i}", "agent")
                                                         for i in range(6)]
    return write_timeline(tmp / f"{org}.jsonl", org=org, timezone="Europe/Berlin",
                          business_hours={"mon": [["09:00", "17:00"]]},
                          channels=[HistoryChannel("wa", "whatsapp", "WA", 1.0, "+49151")], users=users,
                          habits={e: list(HABITS)[i % len(HABITS)] for i, (e, _, _) in enumerate(users)},
                          days=days, per_day=per_weekday, now=datetime(2026, 3, 2, tzinfo=UTC))


def _snapshot(engine: Engine, org_name: str) -> dict[str, object]:
    """Everything an import writes for one organization, without surrogate ids or batch write times."""
    q = {
        "contacts": """select k.provider_contact_id, k.display_name, k.first_seen_at, k.last_seen_at
                       from contacts k join organizations o on o.id = k.organization_id where o.name = :o
                       order by 1""",
        "conversations": """select k.provider_contact_id, c.status, split_part(u.email, '@', 1), c.unread_count, c.last_message_preview,
                                   c.last_message_at, c.last_inbound_at, c.cycle_number, c.cycle_started_at,
                                   c.first_response_at, c.awaiting_reply, c.created_at
                            from conversations c join contacts k on k.id = c.contact_id
                            join organizations o on o.id = c.organization_id
                            left join users u on u.id = c.assigned_user_id where o.name = :o order by 1""",
        "messages": """select m.provider_message_id, k.provider_contact_id, m.direction, m.author_kind, split_part(u.email, '@', 1),
                              m.body, m.status, m.sent_at, m.delivered_at, m.read_at, m.error_code
                       from messages m join conversations c on c.id = m.conversation_id
                       join contacts k on k.id = c.contact_id join organizations o on o.id = m.organization_id
                       left join users u on u.id = m.author_user_id where o.name = :o order by 1""",
        # per conversation, in the order they were written
        "events": """select k.provider_contact_id, e.type, e.occurred_at, split_part(u.email, '@', 1), m.provider_message_id,
                            e.data - 'contact_id' - 'from_user_id' - 'to_user_id' - 'assigned_user_id'
                     from conversation_events e join conversations c on c.id = e.conversation_id
                     join contacts k on k.id = c.contact_id join organizations o on o.id = e.organization_id
                     left join users u on u.id = e.actor_user_id left join messages m on m.id = e.message_id
                     where o.name = :o order by 1, e.id""",
        "presence": """select split_part(u.email, '@', 1), p.state, p.occurred_at from presence_events p join users u on u.id = p.user_id
                       join organizations o on o.id = p.organization_id where o.name = :o order by 1, p.id""",
    }
    from sqlalchemy import text

    with engine.connect() as con:
        return {k: [tuple(r) for r in con.execute(text(sql), {"o": org_name})] for k, sql in q.items()}


def test_batched_replay_gives_the_same_result_as_line_by_line(engine: Engine, tmp_path: Path) -> None:
    """Holding inbound/status lines back past other conversations' lines changes nothing observable."""
    fast = import_events(engine, _demo(tmp_path, "Batched", 4, 20), KEY)
    slow = import_events(engine, _demo(tmp_path, "InOrder", 4, 20), KEY, file_order=True)
    assert fast.events == slow.events > 300 and fast.messages == slow.messages
    a, b = _snapshot(engine, "Batched"), _snapshot(engine, "InOrder")
    for table in a:
        assert a[table] == b[table], table
    kinds = {e[1] for e in a["events"]}  # type: ignore[attr-defined]
    assert {"CREATED", "REOPENED", "REASSIGNED", "MESSAGE_READ", "MESSAGE_DELIVERED", "COMPLETED"} <= kinds


@pytest.mark.timeout(1200)  # a heavy replay: on a loaded 2-core machine it needs more than the default
def test_a_ten_thousand_line_timeline_imports(engine: Engine, tmp_path: Path) -> None:
    p = _demo(tmp_path, "Ten K", 27, 50)
    rep = import_events(engine, p, KEY)
    assert rep.lines >= 10_000 and rep.events >= 9_900 and rep.conversations > 1_000
    assert _count(engine, Message) == rep.messages
