"""Read marks and typing indicators for the platform, queued by the inbox and sent by a flow.

The inbox never waits for the platform: opening a conversation queues one *read* signal for the
customer's latest message (every platform marks the earlier ones with it; once per message: a
partial unique index), starting to write a reply queues a *typing* signal (at most one every
:data:`TYPING_EVERY` per conversation). The ``send-signals`` flow (:mod:`switchboard.workflows.signals`)
sends them; a failure is kept on the signal (status FAILED and the error) and shown on the Channels &
health page, never to the agent. A channel with ``send_read_receipts`` off queues nothing.

Signals are best effort: one attempt each; a typing indicator older than :data:`TYPING_STALE` is
dropped unsent (FAILED, "expired") because it would mislead the customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import aliased

from switchboard.auth.audit import record_audit
from switchboard.clock import utcnow
from switchboard.db.schema import Channel, Contact, Conversation, Message, PlatformSignal
from switchboard.domain.conversation import ConversationAction, Direction, allowed_actions
from switchboard.errors import NotFound
from switchboard.policy import Action, require
from switchboard.services.conversations import ConversationRow, load_conversation
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

TYPING_EVERY = timedelta(seconds=20)  # WhatsApp shows the indicator up to 25 s, Messenger about 20 s
TYPING_STALE = timedelta(seconds=15)
KEEP = {"typing": timedelta(days=1), "read": timedelta(days=30)}  # sent or failed signals, then purged
PENDING, SENT, FAILED = "PENDING", "SENT", "FAILED"


@dataclass(frozen=True, slots=True)
class SignalJob:
    id: int
    channel_id: int
    kind: str  # read | typing
    recipient_id: str
    provider_message_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ChannelSignals:
    channel_id: int
    key: str
    name: str
    provider: str
    send_read_receipts: bool
    sent_last_day: int
    failed_last_day: int
    last_error: str | None


def _latest_inbound(uow: UnitOfWork, conv: ConversationRow) -> tuple[str, str] | None:
    """(customer id, provider message id) of the customer's latest message, if the channel marks reads."""
    row = uow.session.execute(
        select(Contact.provider_contact_id, Message.provider_message_id)
        .select_from(Conversation)
        .join(Channel, and_(Channel.id == Conversation.channel_id, Channel.send_read_receipts.is_(True)))
        .join(Contact, Contact.id == Conversation.contact_id)
        .join(Message, and_(Message.conversation_id == Conversation.id, Message.direction == Direction.INBOUND,
                            Message.provider_message_id.is_not(None)))
        .where(Conversation.id == conv.id)
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.provider_contact_id, row.provider_message_id)


def _values(conv: ConversationRow, kind: str, target: tuple[str, str], now: datetime) -> dict[str, object]:
    return {"organization_id": conv.organization_id, "channel_id": conv.channel_id, "conversation_id": conv.id,
            "kind": kind, "recipient_id": target[0], "provider_message_id": target[1], "created_at": now}


def queue_read_mark(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None) -> bool:
    """The conversation's assignee opened it: queue a read mark for the customer's latest message (once
    per message). False when nothing was queued (not the assignee, the channel's read receipts are off,
    no customer message yet, already queued)."""
    now = now or utcnow()
    conv = load_conversation(uow, actor, conversation_id)
    if actor.is_system or conv.assigned_user_id != actor.user_id:
        return False
    target = _latest_inbound(uow, conv)
    if target is None:
        return False
    inserted = uow.session.execute(
        pg_insert(PlatformSignal).values(**_values(conv, "read", target, now))
        .on_conflict_do_nothing(index_elements=[PlatformSignal.conversation_id, PlatformSignal.provider_message_id],
                                index_where=PlatformSignal.kind == "read")
        .returning(PlatformSignal.id)).scalar()
    return inserted is not None


def queue_typing(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None) -> bool:
    """The actor is writing a reply: queue a typing indicator unless one was queued in the last
    :data:`TYPING_EVERY`, the actor may not reply here, or the channel's read receipts are off."""
    now = now or utcnow()
    conv = load_conversation(uow, actor, conversation_id)
    if ConversationAction.REPLY not in allowed_actions(conv.participant, conv.facts):
        return False
    recent = uow.session.execute(
        select(PlatformSignal.id).where(PlatformSignal.conversation_id == conv.id, PlatformSignal.kind == "typing",
                                        PlatformSignal.created_at > now - TYPING_EVERY).limit(1)).first()
    target = None if recent is not None else _latest_inbound(uow, conv)
    if target is None:
        return False
    uow.session.execute(pg_insert(PlatformSignal).values(**_values(conv, "typing", target, now)))
    return True


def claim_signals(uow: UnitOfWork, *, limit: int = 100, now: datetime | None = None) -> list[SignalJob]:
    """Take up to ``limit`` pending signals (SKIP LOCKED), oldest first, and mark them SENT (one attempt,
    best effort: the caller commits before calling the platform and records a failure afterwards).
    Typing indicators older than :data:`TYPING_STALE` are dropped as expired."""
    now = now or utcnow()
    rows = uow.session.execute(
        select(PlatformSignal.id, PlatformSignal.channel_id, PlatformSignal.kind, PlatformSignal.recipient_id,
               PlatformSignal.provider_message_id, PlatformSignal.created_at)
        .where(PlatformSignal.status == PENDING).order_by(PlatformSignal.id).limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    jobs = [SignalJob(r.id, r.channel_id, r.kind, r.recipient_id, r.provider_message_id, r.created_at) for r in rows]
    expired = [j.id for j in jobs if j.kind == "typing" and now - j.created_at > TYPING_STALE]
    if expired:
        uow.session.execute(update(PlatformSignal).where(PlatformSignal.id.in_(expired)).values(
            status=FAILED, error="expired before it could be sent", done_at=now))
    live = [j for j in jobs if j.id not in set(expired)]
    if live:
        uow.session.execute(update(PlatformSignal).where(PlatformSignal.id.in_([j.id for j in live])).values(
            status=SENT, attempts=PlatformSignal.attempts + 1, done_at=now))
    return live


def record_signal_failure(uow: UnitOfWork, signal_id: int, error: str, now: datetime | None = None) -> None:
    """The platform refused (or could not be reached for) a signal: FAILED with the reason."""
    uow.session.execute(update(PlatformSignal).where(PlatformSignal.id == signal_id).values(
        status=FAILED, error=(error or "failed")[:2000], done_at=now or utcnow()))


def purge_signals(uow: UnitOfWork, *, now: datetime | None = None, limit: int = 1000) -> int:
    """Delete up to ``limit`` of the oldest finished signals past :data:`KEEP` (the maintenance flow);
    returns how many. Oldest first by id, so each run reads only the rows it deletes."""
    now = now or utcnow()
    old = select(PlatformSignal.id).where(
        PlatformSignal.status != PENDING,
        or_(*(and_(PlatformSignal.kind == kind, PlatformSignal.created_at < now - keep) for kind, keep in KEEP.items())),
    ).order_by(PlatformSignal.id).limit(limit)
    return len(uow.session.execute(delete(PlatformSignal).where(PlatformSignal.id.in_(old))
                                   .returning(PlatformSignal.id)).all())


def set_read_receipts(uow: UnitOfWork, actor: Actor, channel_id: int, *, enabled: bool) -> None:
    """Admin: whether the channel marks customers' messages read and shows typing (audited)."""
    me = require(uow, actor, Action.MANAGE_CHANNELS)
    channel = uow.session.get(Channel, channel_id)
    if channel is None or channel.organization_id != me.organization_id:
        raise NotFound(f"channel {channel_id} not found in your organization")
    if channel.send_read_receipts == enabled:
        return
    uow.session.execute(update(Channel).where(Channel.id == channel_id).values(send_read_receipts=enabled))
    record_audit(uow, organization_id=me.organization_id, actor_user_id=me.acting_user_id,
                 action="channel.read_receipts_changed", target=channel.key, details={"enabled": enabled})


def signals_overview(uow: UnitOfWork, actor: Actor, now: datetime | None = None) -> list[ChannelSignals]:
    """Admin: per channel, whether read receipts are on, what was sent and failed in the last day and
    the latest failure."""
    me = require(uow, actor, Action.MANAGE_CHANNELS)
    since = (now or utcnow()) - timedelta(days=1)
    recent = and_(PlatformSignal.channel_id == Channel.id, PlatformSignal.created_at >= since)
    failed = aliased(PlatformSignal)
    last_error = (select(failed.error).where(failed.channel_id == Channel.id, failed.status == FAILED)
                  .order_by(failed.id.desc()).limit(1).correlate(Channel).scalar_subquery())
    rows = uow.session.execute(
        select(Channel.id, Channel.key, Channel.name, Channel.provider, Channel.send_read_receipts,
               func.count(PlatformSignal.id).filter(PlatformSignal.status == SENT).label("sent"),
               func.count(PlatformSignal.id).filter(PlatformSignal.status == FAILED).label("failed"),
               last_error.label("last_error"))
        .outerjoin(PlatformSignal, recent)
        .where(Channel.organization_id == me.organization_id)
        .group_by(Channel.id).order_by(Channel.key)
    ).all()
    return [ChannelSignals(r.id, r.key, r.name, r.provider, r.send_read_receipts, r.sent, r.failed, r.last_error)
            for r in rows]
