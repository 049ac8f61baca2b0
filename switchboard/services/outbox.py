"""The outbox: replies are written first (PENDING) and sent later by a pipeline.

* ``enqueue_reply`` is idempotent on the client's key: a double click returns the same message.
* ``claim_due`` hands due messages to one worker at a time (``FOR UPDATE SKIP LOCKED``), pushes their
  ``next_attempt_at`` by a lease and gives each claim a fresh **fencing token** (``lease_token``, one
  more per claim). The worker checks :func:`still_owned` right before calling the platform, and
  ``record_sent`` / ``record_failure`` / ``record_unknown`` / ``release_claims`` apply only while the
  message still carries the worker's token: a worker whose lease expired and whose message another
  worker claimed records nothing.
* ``record_sent`` / ``record_failure`` close an attempt; failures keep the platform's code and text,
  retry with exponential backoff and end as a dead letter after the last attempt.
* An **unknown outcome** (the request may have reached the platform: a timeout after it was sent) is
  never retried blindly: ``record_unknown`` marks the message UNKNOWN ("may have been sent") unless the
  platform deduplicates on our key (Telegram's ``random_id``). The platform's report settles it
  (``adopt_reported_send``: WhatsApp echoes our key in ``biz_opaque_callback_data``); otherwise a
  manager resolves it (``resend_unknown``, ``mark_unknown_sent``). See ``docs/delivery.md``.
* A free-text message outside the platform's messaging window (:mod:`switchboard.domain.messaging_window`)
  is refused at enqueue with the window's sentence; the sending workflow checks again at send time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.auth.audit import record_audit
from switchboard.clock import utcnow
from switchboard.db.schema import Attachment, Channel, Contact, Conversation, ConversationEvent, Message, User
from switchboard.domain.conversation import (
    AuthorKind,
    ConversationAction,
    Direction,
    EventType,
    MessageStatus,
    check,
    outbound_author,
    preview_of,
)
from switchboard.domain.messaging_window import MessagingWindow, messaging_window, require_free_text
from switchboard.errors import Conflict, InvalidInput, NotFound
from switchboard.policy import Action, require
from switchboard.services.conversations import load_conversation
from switchboard.services.events import append_event
from switchboard.services.messages import MessageView, load_message, message_views
from switchboard.types import Actor, AttachmentRef
from switchboard.uow import UnitOfWork

MESSAGES = cast(Table, Message.__table__)
MAX_BODY = 4096
MAX_BACKOFF_S = 900
UNKNOWN_RESENT = "message.unknown_resent"
UNKNOWN_MARKED_SENT = "message.unknown_marked_sent"


@dataclass(frozen=True, slots=True)
class OutboundJob:
    message_id: int
    organization_id: int
    channel_id: int
    provider: str
    recipient_id: str
    body: str | None
    attachments: tuple[AttachmentRef, ...]
    idempotency_key: str | None
    attempts: int
    reply_to_provider_message_id: str | None
    last_inbound_at: datetime | None  # the customer's last message: the window is checked at send time
    author_kind: str
    template: dict[str, Any] | None  # a template message: the Cloud API template object
    token: int = 0  # the claim's fencing token: results are recorded only while the message carries it


def _clean_body(body: str) -> str:
    if not isinstance(body, str) or not body.strip():
        raise InvalidInput("the reply is empty")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"the reply is {len(body)} characters long; the limit is {MAX_BODY}")
    return body


def clean_key(key: str) -> str:
    if not key or not key.strip():
        raise InvalidInput("an idempotency key is required (one per reply the user typed)")
    if len(key) > 128:
        raise InvalidInput("the idempotency key is longer than 128 characters")
    return key


def existing_message(uow: UnitOfWork, organization_id: int, key: str, conversation_id: int) -> int | None:
    row = uow.session.execute(
        select(Message.id, Message.conversation_id)
        .where(Message.organization_id == organization_id, Message.idempotency_key == key)
    ).first()
    if row is None:
        return None
    if row.conversation_id != conversation_id:
        raise Conflict(f"idempotency key {key!r} was already used for a message in another conversation")
    return int(row.id)


def insert_outbound(uow: UnitOfWork, *, organization_id: int, conversation_id: int, channel_id: int,
                    body: str | None, author_kind: str, author_user_id: int | None, key: str,
                    now: datetime, reply_to: str | None, template: dict[str, Any] | None = None,
                    content_type: str | None = None) -> int:
    """Write one PENDING outbound message (a template message when ``template`` is given: ``body`` is its
    rendered text; ``content_type`` e.g. ``image`` for an attachment, whose row the caller adds) and move
    the conversation's preview; a concurrent double click returns the winner."""
    content_type = content_type or ("template" if template is not None else "text")
    ins = pg_insert(MESSAGES).values(
        organization_id=organization_id, conversation_id=conversation_id, channel_id=channel_id,
        direction=Direction.OUTBOUND, author_kind=author_kind, author_user_id=author_user_id, body=body,
        content_type=content_type, template=template, idempotency_key=key, reply_to_provider_message_id=reply_to, status=MessageStatus.PENDING,
        sent_at=now, next_attempt_at=now, created_at=now,
    ).on_conflict_do_nothing(index_elements=[MESSAGES.c.organization_id, MESSAGES.c.idempotency_key],
                             index_where=MESSAGES.c.idempotency_key.is_not(None)  # the partial unique index
                             ).returning(MESSAGES.c.id)
    new_id = uow.session.execute(ins).scalar()
    if new_id is None:  # a concurrent double click won the race
        got = existing_message(uow, organization_id, key, conversation_id)
        assert got is not None
        return got
    values: dict[str, Any] = {"last_message_at": now, "last_message_preview": preview_of(body, content_type),
                              "updated_at": now}
    if author_kind == AuthorKind.AGENT:
        values["awaiting_reply"] = False
    uow.session.execute(update(Conversation).where(Conversation.id == conversation_id).values(**values))
    return int(new_id)


def _window(uow: UnitOfWork, conversation_id: int, now: datetime, *, human: bool = True) -> MessagingWindow:
    row = uow.session.execute(
        select(Channel.provider, Conversation.last_inbound_at)
        .join(Channel, Channel.id == Conversation.channel_id).where(Conversation.id == conversation_id)
    ).one()
    return messaging_window(row.provider, row.last_inbound_at, now, human=human)


def conversation_window(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None
                        ) -> MessagingWindow:
    """The messaging window of a conversation the actor may view: free text, HUMAN_AGENT tag, template
    only or closed, how long it lasts and the sentence to show."""
    conv = load_conversation(uow, actor, conversation_id)
    human = outbound_author(conv.access.actor.acting_user_id) == AuthorKind.AGENT
    return _window(uow, conversation_id, now or utcnow(), human=human)


def enqueue_reply(uow: UnitOfWork, actor: Actor, conversation_id: int, body: str, *, idempotency_key: str,
                  now: datetime | None = None) -> MessageView:
    """Queue a reply (PENDING); only the assignee (or a manager) with 'send' on the channel, and only
    while the platform's messaging window allows free text (InvalidInput with its sentence otherwise).
    The same idempotency key returns the same message."""
    now = now or utcnow()
    body = _clean_body(body)
    key = clean_key(idempotency_key)
    conv = load_conversation(uow, actor, conversation_id, lock=True)
    mid = existing_message(uow, conv.organization_id, key, conversation_id)
    if mid is None:
        check(ConversationAction.REPLY, conv.participant, conv.facts)
        author = outbound_author(conv.access.actor.acting_user_id)
        require_free_text(_window(uow, conversation_id, now, human=author == AuthorKind.AGENT))
        mid = insert_outbound(uow, organization_id=conv.organization_id, conversation_id=conversation_id,
                               channel_id=conv.channel_id, body=body, author_kind=author,
                               author_user_id=conv.access.actor.acting_user_id, key=key, now=now,
                               reply_to=None)
    return load_message(uow, mid)


def enqueue_bot_reply(uow: UnitOfWork, actor: Actor, conversation_id: int, body: str, *, idempotency_key: str,
                      now: datetime | None = None) -> MessageView:
    """Queue a message written by a bot (no user; never counts as a human response). Bots act through
    the organization's system actor (or a manager); only inside the 24-hour window (no HUMAN_AGENT tag)."""
    now = now or utcnow()
    body = _clean_body(body)
    key = clean_key(idempotency_key)
    actor = require(uow, actor, Action.MANAGE_OUTBOX)
    conv = load_conversation(uow, actor, conversation_id)
    mid = existing_message(uow, conv.organization_id, key, conversation_id)
    if mid is None:
        require_free_text(_window(uow, conversation_id, now, human=False))
        mid = insert_outbound(uow, organization_id=conv.organization_id, conversation_id=conversation_id,
                               channel_id=conv.channel_id, body=body, author_kind=AuthorKind.BOT,
                               author_user_id=None, key=key, now=now, reply_to=None)
    return load_message(uow, mid)


def record_already_sent_reply(uow: UnitOfWork, actor: Actor, conversation_id: int, body: str, *,
                              idempotency_key: str, provider_message_id: str, sent_at: datetime,
                              author_user_id: int | None = None) -> MessageView:
    """Record a reply that was already sent outside the outbox (the importer replays history): written
    SENT at once, never queued, no messaging window checked (the platform applied it then). A person's
    reply names its ``author_user_id`` (a user of the organization); without it the reply is a bot's.
    Managers and the system actor only; the same idempotency key returns the same message."""
    body = _clean_body(body)
    key = clean_key(idempotency_key)
    me = require(uow, actor, Action.MANAGE_OUTBOX)
    conv = load_conversation(uow, me, conversation_id, lock=True)
    mid = existing_message(uow, conv.organization_id, key, conversation_id)
    if mid is not None:
        return load_message(uow, mid)
    if author_user_id is not None and uow.session.execute(
            select(User.id).where(User.id == author_user_id, User.organization_id == conv.organization_id)
    ).scalar() is None:
        raise NotFound(f"user {author_user_id} not found")
    mid = insert_outbound(uow, organization_id=conv.organization_id, conversation_id=conversation_id,
                          channel_id=conv.channel_id, body=body,
                          author_kind=outbound_author(author_user_id),
                          author_user_id=author_user_id, key=key, now=sent_at, reply_to=None)
    _mark_sent(uow, _lock_message(uow, mid), provider_message_id=provider_message_id, sent_at=sent_at)
    return load_message(uow, mid)


def release_claims(uow: UnitOfWork, due: Sequence[tuple[int, int, datetime]]) -> None:
    """Give claimed, unsent jobs back (one statement): ``(message id, token, due at)``, each due again
    at its time, the claim's attempt not counted; a job whose token is no longer the message's (another
    worker claimed it since) is left alone. Flows call it for jobs their channel's rate limit defers."""
    if not due:
        return
    ids = [m for m, _, _ in due]
    at = case({message_id: when for message_id, _, when in due}, value=Message.id)
    token = case({message_id: tok for message_id, tok, _ in due}, value=Message.id)
    uow.session.execute(
        update(Message).where(Message.id.in_(ids), Message.status == MessageStatus.PENDING,
                              Message.lease_token == token)
        .values(next_attempt_at=at, attempts=Message.attempts - 1))


def claim_due(uow: UnitOfWork, *, limit: int = 50, now: datetime | None = None, lease_seconds: int = 60,
              channel_id: int | None = None) -> list[OutboundJob]:
    """Lease up to ``limit`` due outbound messages to this worker (only of active channels: paused,
    in error (credentials refused) or removed ones keep their messages waiting), each with a fresh
    fencing token. The sending flow commits the lease before it sends (the lease is what keeps two
    workers apart; the token is what keeps a worker whose lease ran out from recording anything)."""
    now = now or utcnow()
    stmt = (
        select(Message.id)
        .join(Channel, Channel.id == Message.channel_id)
        .where(Message.status == MessageStatus.PENDING, Message.direction == Direction.OUTBOUND,
               Message.next_attempt_at <= now,
               Channel.status == "active")
        .order_by(Message.next_attempt_at, Message.id)
        .limit(limit)
        .with_for_update(of=Message, skip_locked=True)
    )
    if channel_id is not None:
        stmt = stmt.where(Message.channel_id == channel_id)
    ids = list(uow.session.execute(stmt).scalars())
    if not ids:
        return []
    uow.session.execute(update(Message).where(Message.id.in_(ids)).values(
        attempts=Message.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_seconds),
        lease_token=Message.lease_token + 1))
    rows = uow.session.execute(
        select(Message.id, Message.organization_id, Message.channel_id, Channel.provider,
               Contact.provider_contact_id, Message.body, Message.idempotency_key, Message.attempts,
               Message.reply_to_provider_message_id, Conversation.last_inbound_at, Message.author_kind,
               Message.template, Message.lease_token)
        .join(Channel, Channel.id == Message.channel_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Message.id.in_(ids))
        .order_by(Message.next_attempt_at, Message.id)
    ).all()
    atts: dict[int, list[AttachmentRef]] = {}
    for a in uow.session.execute(select(Attachment).where(Attachment.message_id.in_(ids))
                                 .order_by(Attachment.id)).scalars():
        atts.setdefault(a.message_id, []).append(AttachmentRef(
            a.kind, a.mime_type, a.provider_media_id, a.url, a.file_name, a.size_bytes, a.sha256, a.data))
    return [OutboundJob(r.id, r.organization_id, r.channel_id, r.provider, r.provider_contact_id, r.body,
                        tuple(atts.get(r.id, ())), r.idempotency_key, r.attempts,
                        r.reply_to_provider_message_id, r.last_inbound_at, r.author_kind, r.template,
                        r.lease_token) for r in rows]


def still_owned(uow: UnitOfWork, message_id: int, token: int, now: datetime | None = None) -> bool:
    """The fencing check right before the platform is called: the message is still PENDING, still
    carries this claim's token and the claim's lease has not run out."""
    now = now or utcnow()
    return uow.session.execute(
        select(Message.id).where(Message.id == message_id, Message.status == MessageStatus.PENDING,
                                 Message.lease_token == token, Message.next_attempt_at > now)
    ).first() is not None


def _lock_message(uow: UnitOfWork, message_id: int) -> Any:
    row = uow.session.execute(
        select(Message.id, Message.organization_id, Message.conversation_id, Message.channel_id,
               Message.status, Message.direction, Message.author_kind, Message.author_user_id,
               Message.attempts, Message.provider_message_id, Message.is_dead_letter, Message.lease_token)
        .where(Message.id == message_id).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"message {message_id} not found")
    return row


def _claimed(uow: UnitOfWork, message_id: int, token: int) -> Any | None:
    """The locked message while it is PENDING under this claim's token; None for a stale claim."""
    m = _lock_message(uow, message_id)
    return m if m.status == MessageStatus.PENDING and m.lease_token == token else None


def record_sent(uow: UnitOfWork, message_id: int, *, token: int, provider_message_id: str | None,
                sent_at: datetime) -> bool:
    """PENDING → SENT with the platform's id (MESSAGE_SENT) when this claim (``token``) still owns the
    message; False (nothing recorded) otherwise. Idempotent (the sending flow)."""
    m = _claimed(uow, message_id, token)
    if m is None:
        return False
    _mark_sent(uow, m, provider_message_id=provider_message_id, sent_at=sent_at)
    return True


def _mark_sent(uow: UnitOfWork, m: Any, *, provider_message_id: str | None, sent_at: datetime,
               data: dict[str, Any] | None = None) -> None:
    """The locked message ``m`` went out: SENT, MESSAGE_SENT event, the cycle's first response."""
    if provider_message_id is not None:
        # an echo of this very message may have been ingested first: fold it into this one
        echo = uow.session.execute(
            select(Message.id).where(Message.channel_id == m.channel_id,
                                     Message.provider_message_id == provider_message_id, Message.id != m.id)
        ).scalar()
        if echo is not None:
            uow.session.execute(delete(ConversationEvent).where(ConversationEvent.message_id == echo))
            uow.session.execute(delete(Message).where(Message.id == echo))
    uow.session.execute(update(Message).where(Message.id == m.id).values(
        status=MessageStatus.SENT, provider_message_id=provider_message_id, sent_at=sent_at, status_updated_at=sent_at,
        next_attempt_at=None))
    conv = uow.session.execute(
        select(Conversation.cycle_number, Conversation.first_response_at, Conversation.cycle_started_at)
        .where(Conversation.id == m.conversation_id).with_for_update()
    ).one()
    append_event(uow, organization_id=m.organization_id, conversation_id=m.conversation_id,
                 type=EventType.MESSAGE_SENT, occurred_at=sent_at, actor_user_id=m.author_user_id, message_id=m.id,
                 data={"author_kind": m.author_kind, "cycle": conv.cycle_number, **(data or {})})
    human = m.author_kind == AuthorKind.AGENT and m.author_user_id is not None
    if human and conv.first_response_at is None and conv.cycle_started_at is not None:
        uow.session.execute(update(Conversation).where(Conversation.id == m.conversation_id)
                            .values(first_response_at=sent_at))


UNSETTLED = (MessageStatus.PENDING, MessageStatus.UNKNOWN)  # sends a platform report can still settle


def adopt_reported_send(uow: UnitOfWork, channel_id: int, *, idempotency_key: str, provider_message_id: str,
                        sent_at: datetime) -> bool:
    """The platform reports a message we still hold as PENDING or UNKNOWN (matched by the idempotency key
    it echoes, e.g. WhatsApp's ``biz_opaque_callback_data``): the send went out but its result was never
    recorded (worker crash, timeout after delivery). Record it as SENT so the outbox does not send it
    twice; a worker still holding a claim on it then records nothing. Returns True when a message was
    adopted. Does not commit."""
    message_id = uow.session.execute(
        select(Message.id).where(Message.channel_id == channel_id, Message.idempotency_key == idempotency_key,
                                 Message.direction == Direction.OUTBOUND, Message.status.in_(UNSETTLED))
    ).scalar()
    if message_id is None:
        return False
    m = _lock_message(uow, int(message_id))
    if m.status not in UNSETTLED:
        return False
    _mark_sent(uow, m, provider_message_id=provider_message_id, sent_at=sent_at,
               data={"settled_by": "platform report"})
    return True


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    if retry_after is not None and retry_after > 0:
        return float(retry_after)
    base = float(min(2 ** max(attempts, 1), MAX_BACKOFF_S))
    return base + random.uniform(0, base / 4)  # noqa: S311 - jitter, not security


def record_failure(uow: UnitOfWork, message_id: int, *, token: int, error_code: str | None, error_message: str,
                   retryable: bool, retry_after: float | None = None, max_attempts: int = 6,
                   now: datetime | None = None) -> bool:
    """Retry later with backoff, or FAILED + dead letter (MESSAGE_FAILED); keeps code and text. Only
    while this claim (``token``) still owns the message: False (nothing recorded) otherwise."""
    now = now or utcnow()
    m = _claimed(uow, message_id, token)
    if m is None:
        return False
    error_message = error_message or "sending failed"
    if retryable and m.attempts < max_attempts:
        uow.session.execute(update(Message).where(Message.id == message_id).values(
            error_code=error_code, error_message=error_message,
            next_attempt_at=now + timedelta(seconds=backoff_seconds(m.attempts, retry_after))))
        return True
    uow.session.execute(update(Message).where(Message.id == message_id).values(
        status=MessageStatus.FAILED, is_dead_letter=True, error_code=error_code, error_message=error_message,
        status_updated_at=now, next_attempt_at=None))
    append_event(uow, organization_id=m.organization_id, conversation_id=m.conversation_id,
                 type=EventType.MESSAGE_FAILED, occurred_at=now, actor_user_id=m.author_user_id, message_id=m.id,
                 data={"error_code": error_code, "error_message": error_message, "attempts": m.attempts,
                       "dead_letter": True})
    return True


def record_unknown(uow: UnitOfWork, message_id: int, *, token: int, error_code: str | None, error_message: str,
                   retry_is_safe: bool = False, max_attempts: int = 6, now: datetime | None = None) -> bool:
    """The send's outcome is unknown (the request may have reached the platform). When the platform
    deduplicates on our key (``retry_is_safe``: Telegram's ``random_id``) it is retried like any
    failure while attempts remain; otherwise it becomes UNKNOWN ("may have been sent", MESSAGE_UNKNOWN):
    never retried until the platform's report or a person settles it. Only while this claim owns it."""
    now = now or utcnow()
    m = _claimed(uow, message_id, token)
    if m is None:
        return False
    error_message = error_message or "the platform did not answer: the message may have been sent"
    if retry_is_safe and m.attempts < max_attempts:
        return record_failure(uow, message_id, token=token, error_code=error_code, error_message=error_message,
                              retryable=True, max_attempts=max_attempts, now=now)
    uow.session.execute(update(Message).where(Message.id == message_id).values(
        status=MessageStatus.UNKNOWN, error_code=error_code, error_message=error_message, status_updated_at=now,
        next_attempt_at=None))
    append_event(uow, organization_id=m.organization_id, conversation_id=m.conversation_id,
                 type=EventType.MESSAGE_UNKNOWN, occurred_at=now, actor_user_id=m.author_user_id, message_id=m.id,
                 data={"error_code": error_code, "error_message": error_message, "attempts": m.attempts})
    return True


def _managed_outbound(uow: UnitOfWork, actor: Actor, message_id: int) -> tuple[Actor, Any]:
    """A manager's outbound message of their organization, locked (NotFound across organizations)."""
    me = require(uow, actor, Action.MANAGE_OUTBOX)
    m = _lock_message(uow, message_id)
    if m.organization_id != me.organization_id:
        raise NotFound(f"message {message_id} not found")
    if m.direction != Direction.OUTBOUND:
        raise InvalidInput(f"message {message_id} was received, not sent; there is nothing to resend")
    return me, m


def _requeue(uow: UnitOfWork, message_id: int, now: datetime) -> None:
    uow.session.execute(update(Message).where(Message.id == message_id).values(
        status=MessageStatus.PENDING, is_dead_letter=False, attempts=0, next_attempt_at=now, provider_message_id=None,
        status_updated_at=now))


def retry_dead_letter(uow: UnitOfWork, actor: Actor, message_id: int, now: datetime | None = None
                      ) -> MessageView:
    """Manager: a FAILED outbound message goes back to PENDING (fresh attempts)."""
    now = now or utcnow()
    _, m = _managed_outbound(uow, actor, message_id)
    if m.status == MessageStatus.PENDING:
        return load_message(uow, message_id)
    if m.status != MessageStatus.FAILED:
        raise Conflict(f"message {message_id} is {m.status}, not FAILED; it does not need a retry")
    _requeue(uow, message_id, now)
    return load_message(uow, message_id)


def _unknown(m: Any, message_id: int) -> None:
    if m.status != MessageStatus.UNKNOWN:
        raise Conflict(f"message {message_id} is {m.status}, not 'may have been sent'; nothing to settle")


def resend_unknown(uow: UnitOfWork, actor: Actor, message_id: int, now: datetime | None = None) -> MessageView:
    """Manager: a message that may have been sent (UNKNOWN) is sent again (PENDING, fresh attempts); the
    customer may then get it twice, which the manager accepts by resending. Idempotent: a message already
    queued again is returned as it is. Audited."""
    now = now or utcnow()
    me, m = _managed_outbound(uow, actor, message_id)
    if m.status == MessageStatus.PENDING:
        return load_message(uow, message_id)
    _unknown(m, message_id)
    _requeue(uow, message_id, now)
    record_audit(uow, organization_id=me.organization_id, actor_user_id=me.acting_user_id, action=UNKNOWN_RESENT,
                 target=f"message:{message_id}", details={"conversation_id": m.conversation_id}, now=now)
    return load_message(uow, message_id)


def mark_unknown_sent(uow: UnitOfWork, actor: Actor, message_id: int, now: datetime | None = None) -> MessageView:
    """Manager: a message that may have been sent (UNKNOWN) did reach the customer (they answered it, the
    platform's app shows it): SENT with the MESSAGE_SENT event saying a person settled it; never sent
    again. Idempotent for a message already SENT (or later). Audited."""
    now = now or utcnow()
    me, m = _managed_outbound(uow, actor, message_id)
    if m.status in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ):
        return load_message(uow, message_id)
    _unknown(m, message_id)
    _mark_sent(uow, m, provider_message_id=None, sent_at=now,
               data={"settled_by": "person", "settled_by_user_id": me.acting_user_id})
    record_audit(uow, organization_id=me.organization_id, actor_user_id=me.acting_user_id,
                 action=UNKNOWN_MARKED_SENT, target=f"message:{message_id}",
                 details={"conversation_id": m.conversation_id}, now=now)
    return load_message(uow, message_id)


def list_unknown(uow: UnitOfWork, actor: Actor, *, limit: int = 100) -> list[MessageView]:
    """Manager: the organization's messages that may have been sent (UNKNOWN), newest first."""
    me = require(uow, actor, Action.MANAGE_OUTBOX)
    return message_views(uow, (Message.organization_id == me.organization_id)
                         & (Message.status == MessageStatus.UNKNOWN), order=(Message.id.desc(),), limit=limit)


def list_dead_letters(uow: UnitOfWork, actor: Actor, *, limit: int = 100) -> list[MessageView]:
    """Manager: the latest dead-lettered messages of the organization."""
    me = require(uow, actor, Action.MANAGE_OUTBOX)
    return message_views(uow, (Message.organization_id == me.organization_id) & Message.is_dead_letter,
                         order=(Message.id.desc(),), limit=limit)
