"""Append rows to the conversation audit trail (``conversation_events``).

Every state change of a conversation writes one row here, with its actor and the time it happened
(``occurred_at``: the service's ``now`` or the platform's timestamp). The warehouse computes metrics
from these rows, so they are append-only: nothing here updates or deletes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, text

from switchboard.db.schema import EVENT_TYPES, ConversationEvent
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


_INSERT_MANY = text("""
    insert into conversation_events (organization_id, conversation_id, type, actor_user_id, message_id,
                                     data, occurred_at)
    select v.org, v.conv, v.type, v.actor, v.msg, cast(v.data as jsonb), v.at
    from unnest(cast(:org as bigint[]), cast(:conv as bigint[]), cast(:type as text[]),
                cast(:actor as bigint[]), cast(:msg as bigint[]), cast(:data as text[]),
                cast(:at as timestamptz[])) as v(org, conv, type, actor, msg, data, at)
""")


def append_events(uow: UnitOfWork, events: Sequence[NewEvent]) -> None:
    """Insert many events in one statement with array parameters (no commit: the caller's transaction)."""
    if not events:
        return
    if len(events) == 1:
        uow.session.execute(insert(EVENTS).values(**events[0].row()))
        return
    rows = [e.row() for e in events]
    uow.session.execute(_INSERT_MANY, {
        "org": [r["organization_id"] for r in rows], "conv": [r["conversation_id"] for r in rows],
        "type": [r["type"] for r in rows], "actor": [r["actor_user_id"] for r in rows],
        "msg": [r["message_id"] for r in rows],
        "data": [json.dumps(r["data"], default=str) for r in rows], "at": [r["occurred_at"] for r in rows],
    })


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
