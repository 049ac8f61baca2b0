"""Outgoing event webhooks: subscriptions, the events turned into deliveries, and their outcomes.

* Admins (or API keys with ``webhooks:manage``, :attr:`Action.MANAGE_WEBHOOKS`) subscribe a URL to
  events (:data:`EVENT_TYPES_OUT`); the signing secret is shown once and kept encrypted. Every
  subscription change is audited. A channel-restricted key's subscription only gets its channels' events.
* The events come from the conversation event log (every state change is a row there):
  :func:`dispatch_events` turns new rows into one delivery per matching subscription, with a stable id
  (``evt_<event row id>``) and its payload fixed at that moment. A subscription's cursor only moves past
  events older than :data:`RESCAN` (a transaction still open when a later event was dispatched is
  picked up on a later run); the unique (subscription, event id) makes the rescans harmless.
* :func:`claim_deliveries` leases due deliveries (``FOR UPDATE SKIP LOCKED``); :func:`record_attempt`
  logs each POST with its answer, retries with backoff for :data:`RETRY_FOR` (24 h) and then gives up
  (FAILED); a subscription failing for :data:`PAUSE_AFTER` (a day) without a success is paused and
  shown to admins until resumed. The HTTP part is :mod:`switchboard.workflows.event_webhooks`.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import aliased

from switchboard.auth.audit import record_audit
from switchboard.clock import utcnow
from switchboard.crypto import decrypt, encrypt
from switchboard.db.schema import (
    EVENT_TYPES_OUT,
    Channel,
    Conversation,
    ConversationEvent,
    EventDelivery,
    EventDeliveryAttempt,
    EventSubscription,
    Message,
)
from switchboard.errors import InvalidInput, NotFound
from switchboard.policy import Action, require
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

RESCAN = timedelta(minutes=10)
RETRY_FOR = timedelta(hours=24)
PAUSE_AFTER = timedelta(hours=24)
MAX_BACKOFF = timedelta(hours=1)
RESPONSE_KEPT = 2048
MAX_SUBSCRIPTIONS = 20

# conversation event type -> outgoing event type
EVENT_MAP: dict[str, str] = {
    "MESSAGE_RECEIVED": "message.received",
    "MESSAGE_SENT": "message.status", "MESSAGE_DELIVERED": "message.status", "MESSAGE_READ": "message.status",
    "MESSAGE_FAILED": "message.status",
    "ACCEPTED": "conversation.assigned", "REASSIGNED": "conversation.assigned",
    "COMPLETED": "conversation.completed",
}

CREATED = "event_webhook.created"
DELETED = "event_webhook.deleted"
RESUMED = "event_webhook.resumed"


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    id: int
    url: str
    events: tuple[str, ...]
    status: str
    failing_since: datetime | None
    paused_at: datetime | None
    last_error: str | None
    last_delivery_at: datetime | None
    pending: int
    failed: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CreatedSubscription:
    view: SubscriptionView
    secret: str  # shown once


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    id: int
    subscription_id: int
    url: str
    secret: bytes
    event_id: str
    event_type: str
    payload: dict[str, Any]


def _aad(subscription_id: int) -> bytes:
    return f"event-webhook:{subscription_id}".encode()


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise InvalidInput(f"{url[:100]!r} is not an http(s) URL")
    return url


def _clean_events(events: Sequence[str]) -> list[str]:
    wanted = {e.strip() for e in events if e and e.strip()}
    unknown = sorted(wanted - set(EVENT_TYPES_OUT))
    if not wanted or unknown:
        raise InvalidInput(f"events must be some of {', '.join(EVENT_TYPES_OUT)}"
                           + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    return [e for e in EVENT_TYPES_OUT if e in wanted]


def _views(uow: UnitOfWork, *where: Any) -> list[SubscriptionView]:
    pending = func.count(EventDelivery.id).filter(EventDelivery.status == "PENDING")
    failed = func.count(EventDelivery.id).filter(EventDelivery.status == "FAILED")
    rows = uow.session.execute(
        select(EventSubscription, pending, failed)
        .outerjoin(EventDelivery, (EventDelivery.subscription_id == EventSubscription.id)
                   & EventDelivery.status.in_(("PENDING", "FAILED")))  # ix_event_deliveries_open, not 30 days of them
        .where(*where).group_by(EventSubscription.id).order_by(EventSubscription.id)).all()
    return [SubscriptionView(s.id, s.url, tuple(s.events), s.status, s.failing_since, s.paused_at, s.last_error,
                             s.last_delivery_at, int(p), int(f), s.created_at) for s, p, f in rows]


def _own(uow: UnitOfWork, me: Actor, subscription_id: int) -> EventSubscription:
    sub = uow.session.get(EventSubscription, subscription_id, with_for_update=True)
    if sub is None or sub.organization_id != me.organization_id:
        raise NotFound(f"event webhook {subscription_id} not found in your organization")
    return sub


def _audit(uow: UnitOfWork, me: Actor, action: str, sub: EventSubscription, now: datetime) -> None:
    record_audit(uow, organization_id=me.organization_id, actor_user_id=me.acting_user_id, action=action,
                 target=sub.url[:200], details={"subscription_id": sub.id, "events": list(sub.events),
                                                "api_key_id": me.api_key_id}, now=now)


def create_event_webhook(uow: UnitOfWork, actor: Actor, *, url: str, events: Sequence[str], secret_key: bytes,
                         now: datetime | None = None) -> CreatedSubscription:
    """Subscribe ``url`` to ``events``; returns the signing secret once (``whsec_…``)."""
    now = now or utcnow()
    me = require(uow, actor, Action.MANAGE_WEBHOOKS)
    clean_url, clean_events = _clean_url(url), _clean_events(events)
    count = uow.session.execute(select(func.count()).select_from(EventSubscription)
                                .where(EventSubscription.organization_id == me.organization_id)).scalar_one()
    if count >= MAX_SUBSCRIPTIONS:
        raise InvalidInput(f"an organization has at most {MAX_SUBSCRIPTIONS} event webhooks; delete one first")
    last = uow.session.execute(select(func.coalesce(func.max(ConversationEvent.id), 0))
                               .where(ConversationEvent.organization_id == me.organization_id)).scalar_one()
    sub = EventSubscription(organization_id=me.organization_id, url=clean_url, events=clean_events,
                            channel_ids=None if me.channel_ids is None else sorted(me.channel_ids),
                            created_by_user_id=me.acting_user_id, created_by_api_key_id=me.api_key_id,
                            cursor_event_id=int(last), created_at=now)
    uow.session.add(sub)
    uow.session.flush()
    secret = "whsec_" + secrets.token_urlsafe(32)
    sub.secret_enc = encrypt(secret_key, secret.encode(), _aad(sub.id))
    _audit(uow, me, CREATED, sub, now)
    uow.session.flush()
    return CreatedSubscription(_views(uow, EventSubscription.id == sub.id)[0], secret)


def list_event_webhooks(uow: UnitOfWork, actor: Actor) -> list[SubscriptionView]:
    me = require(uow, actor, Action.MANAGE_WEBHOOKS)
    return _views(uow, EventSubscription.organization_id == me.organization_id)


def delete_event_webhook(uow: UnitOfWork, actor: Actor, subscription_id: int, now: datetime | None = None) -> None:
    """Stop and remove a subscription with its delivery log."""
    now = now or utcnow()
    me = require(uow, actor, Action.MANAGE_WEBHOOKS)
    sub = _own(uow, me, subscription_id)
    _audit(uow, me, DELETED, sub, now)
    uow.session.delete(sub)
    uow.session.flush()


def resume_event_webhook(uow: UnitOfWork, actor: Actor, subscription_id: int, now: datetime | None = None
                         ) -> SubscriptionView:
    """A paused subscription goes back to work: its waiting deliveries are due now."""
    now = now or utcnow()
    me = require(uow, actor, Action.MANAGE_WEBHOOKS)
    sub = _own(uow, me, subscription_id)
    if sub.status != "active":
        sub.status, sub.paused_at, sub.failing_since = "active", None, None
        uow.session.execute(update(EventDelivery).where(EventDelivery.subscription_id == sub.id,
                                                        EventDelivery.status == "PENDING")
                            .values(next_attempt_at=now))
        _audit(uow, me, RESUMED, sub, now)
        uow.session.flush()
    return _views(uow, EventSubscription.id == sub.id)[0]


def list_event_deliveries(uow: UnitOfWork, actor: Actor, subscription_id: int, *, limit: int = 50
                          ) -> list[DeliveryView]:
    """The subscription's latest deliveries, newest first."""
    me = require(uow, actor, Action.MANAGE_WEBHOOKS)
    _own(uow, me, subscription_id)
    rows = uow.session.execute(select(EventDelivery).where(EventDelivery.subscription_id == subscription_id)
                               .order_by(EventDelivery.id.desc()).limit(max(1, min(limit, 500)))).scalars()
    return [DeliveryView(d.id, d.event_id, d.event_type, d.status, d.attempts, d.last_status_code, d.last_error,
                         d.created_at, d.delivered_at, d.next_attempt_at) for d in rows]


# --- the dispatcher and the delivery log (flows; no actor) -------------------------------------------

def _payload(r: Any, event_type: str) -> dict[str, Any]:
    data: dict[str, Any] = {"conversation_id": r.conversation_id, "channel": r.channel_key}
    if event_type.startswith("message."):
        data["message"] = {"id": r.message_id, "direction": r.direction, "status": r.type.removeprefix("MESSAGE_"),
                           "text": r.body, "content_type": r.content_type,
                           **({"error_code": r.error_code, "error_message": r.error_message}
                              if r.type == "MESSAGE_FAILED" else {})}
    elif event_type == "conversation.assigned":
        data["assigned_user_id"] = (r.data or {}).get("to_user_id") or r.actor_user_id
    return {"id": f"evt_{r.id}", "type": event_type, "created_at": r.occurred_at.isoformat(), "data": data}


def dispatch_events(uow: UnitOfWork, now: datetime | None = None) -> int:
    """Turn new conversation events into deliveries of every active subscription that wants them;
    returns how many deliveries were created. Does not commit."""
    now = now or utcnow()
    subs = uow.session.execute(select(EventSubscription).where(EventSubscription.status == "active")
                               .order_by(EventSubscription.id).with_for_update(skip_locked=True)).scalars().all()
    by_org: dict[int, list[EventSubscription]] = {}
    for s in subs:
        by_org.setdefault(s.organization_id, []).append(s)
    created = 0
    for org, org_subs in by_org.items():
        low = min(s.cursor_event_id for s in org_subs)
        rows = uow.session.execute(
            select(ConversationEvent.id, ConversationEvent.type, ConversationEvent.conversation_id,
                   ConversationEvent.message_id, ConversationEvent.actor_user_id, ConversationEvent.data,
                   ConversationEvent.occurred_at, ConversationEvent.recorded_at, Conversation.channel_id,
                   Channel.key.label("channel_key"), Message.direction, Message.body, Message.content_type,
                   Message.error_code, Message.error_message)
            .join(Conversation, Conversation.id == ConversationEvent.conversation_id)
            .join(Channel, Channel.id == Conversation.channel_id)
            .outerjoin(Message, Message.id == ConversationEvent.message_id)
            .where(ConversationEvent.organization_id == org, ConversationEvent.id > low,
                   ConversationEvent.type.in_(list(EVENT_MAP)))
            .order_by(ConversationEvent.id)).all()
        settled = max((r.id for r in rows if r.recorded_at < now - RESCAN), default=low)
        values = []
        for s in org_subs:
            for r in rows:
                kind = EVENT_MAP[r.type]
                if r.id > s.cursor_event_id and kind in s.events and r.recorded_at >= s.created_at and (
                        s.channel_ids is None or r.channel_id in s.channel_ids):
                    values.append({"organization_id": org, "subscription_id": s.id, "event_id": f"evt_{r.id}",
                                   "event_type": kind, "payload": _payload(r, kind), "status": "PENDING",
                                   "next_attempt_at": now, "created_at": now})
            s.cursor_event_id = max(s.cursor_event_id, settled)
        if values:
            result = uow.session.execute(pg_insert(EventDelivery).values(values).on_conflict_do_nothing(
                index_elements=[EventDelivery.subscription_id, EventDelivery.event_id]).returning(EventDelivery.id))
            created += len(result.all())
    uow.session.flush()
    return created


def claim_deliveries(uow: UnitOfWork, secret_key: bytes, *, limit: int = 20, now: datetime | None = None,
                     lease_seconds: int = 60) -> list[DeliveryJob]:
    """Lease up to ``limit`` due deliveries of active subscriptions (the flow commits before POSTing)."""
    now = now or utcnow()
    ids = list(uow.session.execute(
        select(EventDelivery.id).join(EventSubscription, EventSubscription.id == EventDelivery.subscription_id)
        .where(EventDelivery.status == "PENDING", EventDelivery.next_attempt_at <= now,
               EventSubscription.status == "active")
        .order_by(EventDelivery.next_attempt_at, EventDelivery.id).limit(limit)
        .with_for_update(of=EventDelivery, skip_locked=True)).scalars())
    if not ids:
        return []
    uow.session.execute(update(EventDelivery).where(EventDelivery.id.in_(ids)).values(
        attempts=EventDelivery.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_seconds)))
    sub = aliased(EventSubscription)
    rows = uow.session.execute(
        select(EventDelivery.id, EventDelivery.subscription_id, sub.url, sub.secret_enc, EventDelivery.event_id,
               EventDelivery.event_type, EventDelivery.payload)
        .join(sub, sub.id == EventDelivery.subscription_id).where(EventDelivery.id.in_(ids))
        .order_by(EventDelivery.id)).all()
    return [DeliveryJob(r.id, r.subscription_id, r.url, decrypt(secret_key, bytes(r.secret_enc), _aad(r.subscription_id)),
                        r.event_id, r.event_type, dict(r.payload)) for r in rows]


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … up to an hour, with jitter."""
    base = min(timedelta(seconds=30 * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return base + base * random.uniform(0, 0.2)  # noqa: S311 - jitter, not security


def record_attempt(uow: UnitOfWork, delivery_id: int, *, status_code: int | None, response_body: str | None,
                   error: str | None, duration_ms: int, now: datetime | None = None) -> str:
    """Log one POST and settle the delivery: DELIVERED on a 2xx, otherwise retried later or FAILED after
    24 hours; the subscription is paused after a day of failures. Returns the delivery's status."""
    now = now or utcnow()
    uow.session.add(EventDeliveryAttempt(delivery_id=delivery_id, attempted_at=now, status_code=status_code,
                                         response_body=(response_body or "")[:RESPONSE_KEPT] or None, error=error,
                                         duration_ms=duration_ms))
    d = uow.session.get(EventDelivery, delivery_id, with_for_update=True)
    assert d is not None
    sub = uow.session.get(EventSubscription, d.subscription_id, with_for_update=True)
    assert sub is not None
    d.last_status_code, d.last_error = status_code, error
    if status_code is not None and 200 <= status_code < 300:
        d.status, d.delivered_at, d.next_attempt_at = "DELIVERED", now, None
        sub.failing_since, sub.last_error, sub.last_delivery_at = None, None, now
    else:
        why = error or f"HTTP {status_code}"
        if now - d.created_at >= RETRY_FOR:
            d.status, d.next_attempt_at = "FAILED", None
        else:
            d.next_attempt_at = now + backoff(d.attempts)
        sub.failing_since = sub.failing_since or now
        sub.last_error = f"{now:%Y-%m-%d %H:%M} {d.event_id}: {why}"[:500]
        if now - sub.failing_since >= PAUSE_AFTER and sub.status == "active":
            sub.status, sub.paused_at = "paused", now
    uow.session.flush()
    return d.status
