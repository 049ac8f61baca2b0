"""Replay a batch's messages onto conversation state with the pure rules of the domain.

The rules themselves (reopen on a customer message, unread counts, first response, preview) live in
:mod:`switchboard.domain.conversation`; this module only carries ids around them and turns the events
they produce into rows for ``conversation_events``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from switchboard.domain.conversation import (
    ConversationState,
    ConversationStatus,
    apply_message,
    new_conversation,
)
from switchboard.services.events import NewEvent
from switchboard.types import InboundMessage


@dataclass
class TrackedConversation:
    """A conversation's state during a batch, with its ids (``created``: inserted by this batch)."""

    id: int
    organization_id: int
    state: ConversationState
    created: bool = False
    created_at: datetime | None = None


def loaded(row: Any) -> TrackedConversation:
    """A conversation as read by ``LOCK_CONVERSATIONS``."""
    return TrackedConversation(int(row.id), int(row.organization_id), ConversationState(
        ConversationStatus(row.status), row.assigned_user_id, row.unread_count, row.last_message_preview,
        row.last_message_at, row.last_inbound_at, row.cycle_number, row.cycle_started_at,
        row.first_response_at, row.awaiting_reply))


def in_time_order(messages: Sequence[InboundMessage]) -> list[InboundMessage]:
    return sorted(messages, key=_sent_at)


def _sent_at(m: InboundMessage) -> datetime:
    return m.sent_at


def created(conversation_id: int, organization_id: int, messages: Sequence[InboundMessage]) -> TrackedConversation:
    """A conversation this batch creates, before any of its messages is applied."""
    first = min(m.sent_at for m in messages)
    first_inbound = min((m.sent_at for m in messages if m.direction == "INBOUND"), default=None)
    return TrackedConversation(conversation_id, organization_id, new_conversation(first, first_inbound),
                               created=True, created_at=first)


def replay(conv: TrackedConversation, messages: Sequence[InboundMessage],
           message_ids: Mapping[str, int] | None) -> list[NewEvent]:
    """Apply ``messages`` (in time order) to ``conv``; the events, with their message ids when known."""
    events: list[NewEvent] = []
    for m in messages:
        mid = message_ids[m.provider_message_id] if message_ids is not None else None
        for spec in apply_message(conv.state, direction=m.direction, author_kind=m.author_kind, at=m.sent_at,
                                  body=m.body, content_type=m.content_type):
            events.append(NewEvent(conv.organization_id, conv.id, str(spec.type), spec.occurred_at,
                                   message_id=mid, data=spec.data))
    return events


def state_row(conv: TrackedConversation) -> dict[str, Any]:
    """The replayed columns of a conversation, named as ``UPDATE_CONVERSATIONS`` reads them."""
    s = conv.state
    return {"id": conv.id, "status": str(s.status), "unread_count": s.unread_count,
            "preview": s.last_message_preview, "last_message_at": s.last_message_at,
            "last_inbound_at": s.last_inbound_at, "cycle_number": s.cycle_number,
            "cycle_started_at": s.cycle_started_at, "first_response_at": s.first_response_at,
            "awaiting_reply": s.awaiting_reply}
