"""The manager's outbox view: every outbound message of the organization, filtered and paginated, and
cancelling a message that is still waiting to be sent.

Retrying a failed or dead-lettered message is :func:`switchboard.services.outbox.retry_dead_letter`.
A cancelled message ends FAILED with error code ``cancelled`` and "cancelled by <user>" (a
MESSAGE_FAILED event and an audit entry say who); it can be retried like any failed message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import aliased

from switchboard.auth.audit import record_audit
from switchboard.clock import utcnow
from switchboard.db.schema import MESSAGE_STATUSES, Channel, Contact, Conversation, Message, User
from switchboard.domain.conversation import Direction, EventType, MessageStatus
from switchboard.errors import Conflict, InvalidInput, NotFound
from switchboard.policy import Action, require
from switchboard.services.events import append_event
from switchboard.services.messages import MessageView, load_message
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

DEAD_LETTER = "DEAD_LETTER"  # a status filter: FAILED after the last attempt (not a stored status)
CANCELLED_CODE = "cancelled"
MAX_LIMIT = 200
SENT_STATUSES = frozenset({MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ})


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    conversation_id: int
    channel_id: int
    channel_name: str
    provider: str
    contact_name: str
    agent_user_id: int | None
    agent_name: str | None
    author_kind: str
    body: str | None
    content_type: str
    status: str
    is_dead_letter: bool
    attempts: int
    error_code: str | None
    error_message: str | None
    created_at: datetime
    sent_at: datetime | None  # when the platform took it (None while pending or failed)
    next_attempt_at: datetime | None

    @property
    def retryable(self) -> bool:
        return self.status == MessageStatus.FAILED

    @property
    def cancellable(self) -> bool:
        return self.status == MessageStatus.PENDING

    @property
    def unknown(self) -> bool:
        """It may have been sent (the platform's answer was lost): a person resends it or marks it sent."""
        return self.status == MessageStatus.UNKNOWN


@dataclass(frozen=True, slots=True)
class OutboxPage:
    items: list[OutboxItem]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class OutboxFilters:
    """What the outbox can be filtered by: the organization's channels and the people who send."""

    channels: list[tuple[int, str]]
    agents: list[tuple[int, str]]
    statuses: tuple[str, ...]


def outbox_filters(uow: UnitOfWork, actor: Actor) -> OutboxFilters:
    """Manager: the choices of the outbox's filters (channels, users by name, statuses)."""
    me = require(uow, actor, Action.MANAGE_OUTBOX)
    channels = uow.session.execute(select(Channel.id, Channel.name, Channel.provider)
                                   .where(Channel.organization_id == me.organization_id).order_by(Channel.name))
    agents = uow.session.execute(select(User.id, User.name).where(User.organization_id == me.organization_id)
                                 .order_by(User.name, User.id))
    return OutboxFilters([(c.id, f"{c.name} ({c.provider})") for c in channels],
                         [(a.id, a.name) for a in agents], outbox_statuses())


def outbox_statuses() -> tuple[str, ...]:
    """The status filter's choices: every stored status and dead letters."""
    return (*MESSAGE_STATUSES, DEAD_LETTER)


def _cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit():
        raise InvalidInput("the page cursor is malformed; start again from the first page")
    return int(cursor)


def list_outbox(uow: UnitOfWork, actor: Actor, *, status: str | None = None, channel_id: int | None = None,
                agent_user_id: int | None = None, created_from: datetime | None = None,
                created_to: datetime | None = None, cursor: str | None = None, limit: int = 50) -> OutboxPage:
    """Manager: the organization's outbound messages, newest first, ``limit`` per page (keyset on the
    message id). ``status`` is a message status or ``DEAD_LETTER``; ``created_from``/``created_to``
    bound when the message was written (from inclusive, to exclusive)."""
    me = require(uow, actor, Action.MANAGE_OUTBOX)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if status is not None and status not in outbox_statuses():
        raise InvalidInput(f"unknown status {status!r}; choose one of {', '.join(outbox_statuses())}")
    if created_from is not None and created_to is not None and created_to <= created_from:
        raise InvalidInput("the date range ends before it starts")
    agent = aliased(User)
    stmt = (
        select(Message.id, Message.conversation_id, Message.channel_id, Channel.name.label("channel_name"),
               Channel.provider, Contact.display_name, Contact.username, Contact.provider_contact_id,
               Message.author_user_id, agent.name.label("agent_name"), Message.author_kind, Message.body,
               Message.content_type, Message.status, Message.is_dead_letter, Message.attempts,
               Message.error_code, Message.error_message, Message.created_at, Message.sent_at,
               Message.next_attempt_at)
        .join(Channel, Channel.id == Message.channel_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(agent, agent.id == Message.author_user_id)
        .where(Message.organization_id == me.organization_id, Message.direction == Direction.OUTBOUND)
        .order_by(Message.id.desc())
        .limit(limit + 1)
    )
    if status == DEAD_LETTER:
        stmt = stmt.where(Message.is_dead_letter)
    elif status is not None:
        stmt = stmt.where(Message.status == status)
    if channel_id is not None:
        stmt = stmt.where(Message.channel_id == channel_id)
    if agent_user_id is not None:
        stmt = stmt.where(Message.author_user_id == agent_user_id)
    if created_from is not None:
        stmt = stmt.where(Message.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(Message.created_at < created_to)
    before = _cursor(cursor)
    if before is not None:
        stmt = stmt.where(Message.id < before)
    rows = uow.session.execute(stmt).all()
    items = [_item(r) for r in rows[:limit]]
    return OutboxPage(items, str(items[-1].id) if len(rows) > limit else None)


def _item(r: Any) -> OutboxItem:
    return OutboxItem(
        r.id, r.conversation_id, r.channel_id, r.channel_name, r.provider,
        r.display_name or r.username or r.provider_contact_id, r.author_user_id, r.agent_name, r.author_kind,
        r.body, r.content_type, r.status, r.is_dead_letter, r.attempts, r.error_code, r.error_message,
        r.created_at, r.sent_at if r.status in SENT_STATUSES else None, r.next_attempt_at)


def cancel_pending(uow: UnitOfWork, actor: Actor, message_id: int, now: datetime | None = None) -> MessageView:
    """Manager: a PENDING outbound message is not sent: FAILED with code ``cancelled`` and "cancelled by
    <user>" (MESSAGE_FAILED event, audit entry). Refused (Conflict) once it left PENDING, and while a
    worker holds it for its first attempt (its lease is live: the platform may be being called right
    now). Cancelling a message already cancelled returns it unchanged."""
    now = now or utcnow()
    me = require(uow, actor, Action.MANAGE_OUTBOX)
    m = uow.session.execute(
        select(Message.id, Message.organization_id, Message.conversation_id, Message.direction, Message.status,
               Message.attempts, Message.next_attempt_at, Message.error_code, Message.error_message)
        .where(Message.id == message_id).with_for_update()
    ).first()
    if m is None or m.organization_id != me.organization_id:
        raise NotFound(f"message {message_id} not found")
    if m.direction != Direction.OUTBOUND:
        raise InvalidInput(f"message {message_id} was received, not sent; there is nothing to cancel")
    if m.status == MessageStatus.FAILED and m.error_code == CANCELLED_CODE:
        return load_message(uow, message_id)
    if m.status != MessageStatus.PENDING:
        raise Conflict(f"message {message_id} is {m.status}, no longer waiting to be sent; it cannot be cancelled")
    leased = (m.attempts > 0 and m.next_attempt_at is not None and m.next_attempt_at > now
              and m.error_code is None and m.error_message is None)
    if leased:
        raise Conflict(f"message {message_id} is being sent right now; if it fails you can cancel it then")
    who = me.email or "the system"
    reason = f"cancelled by {who}"
    uow.session.execute(update(Message).where(Message.id == message_id).values(
        status=MessageStatus.FAILED, is_dead_letter=False, error_code=CANCELLED_CODE, error_message=reason,
        next_attempt_at=None, status_updated_at=now))
    append_event(uow, organization_id=m.organization_id, conversation_id=m.conversation_id,
                 type=EventType.MESSAGE_FAILED, occurred_at=now, actor_user_id=me.acting_user_id, message_id=m.id,
                 data={"error_code": CANCELLED_CODE, "error_message": reason, "attempts": m.attempts,
                       "dead_letter": False})
    record_audit(uow, organization_id=me.organization_id, actor_user_id=me.acting_user_id,
                 action="outbox.cancelled", target=f"message:{message_id}", details={"attempts": m.attempts}, now=now)
    return load_message(uow, message_id)
