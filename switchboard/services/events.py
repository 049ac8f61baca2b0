"""Append rows to the conversation audit trail (``conversation_events``).

Every state change of a conversation writes one row here, with its actor and the time it happened
(``occurred_at``: the service's ``now`` or the platform's timestamp). The warehouse computes metrics
from these rows, so they are append-only: nothing here updates or deletes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, text

from switchboard.db.schema import EVENT_TYPES, ConversationEvent
from switchboard.jsonrows import to_json
from switchboard.uow import UnitOfWork

EVENTS = cast(Table, ConversationEvent.__table__)


@dataclass(frozen=True, slots=True)
class NewEvent:
    organization_id: int
    conversation_id: int
    type: str
    occurred_at: datetime
    actor_user_id: int | None = None
    message_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown conversation event type {self.type!r}")
        return {
            "organization_id": self.organization_id,
            "conversation_id": self.conversation_id,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "actor_user_id": self.actor_user_id,
            "message_id": self.message_id,
            "data": self.data,
        }


# one JSON document read by field name: json_to_recordset parses each row once (``r->>k`` on a json
# array element re-parsed the element for every field: a third of the statement at 1,000 rows)
_INSERT_MANY = text("""
    insert into conversation_events (organization_id, conversation_id, type, actor_user_id, message_id,
                                     data, occurred_at)
    select r.o, r.c, r.t, r.a, r.m, r.d, r.at
    from json_to_recordset(cast(:rows as json)) as r(
        o bigint, c bigint, t text, a bigint, m bigint, d jsonb, at timestamptz)
""")


def append_events(uow: UnitOfWork, events: Sequence[NewEvent]) -> None:
    """Insert many events in one statement (one JSON document as the parameter; no commit)."""
    if not events:
        return
    if len(events) == 1:
        uow.session.execute(insert(EVENTS).values(**events[0].row()))
        return
    for e in events:
        if e.type not in EVENT_TYPES:
            raise ValueError(f"unknown conversation event type {e.type!r}")
    rows = to_json([{"o": e.organization_id, "c": e.conversation_id, "t": e.type, "a": e.actor_user_id,
                     "m": e.message_id, "d": e.data or {}, "at": e.occurred_at} for e in events])
    uow.session.execute(_INSERT_MANY, {"rows": rows})


def append_event(
    uow: UnitOfWork,
    *,
    organization_id: int,
    conversation_id: int,
    type: str,
    occurred_at: datetime,
    actor_user_id: int | None = None,
    message_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Insert one event (no commit)."""
    append_events(uow, [NewEvent(organization_id, conversation_id, type, occurred_at, actor_user_id,
                                 message_id, data or {})])
