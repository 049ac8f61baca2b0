"""Raw webhook events: stored durably before the platform gets its 200, processed idempotently later."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, exists, func, insert, or_, select, text, update

from switchboard.clock import utcnow
from switchboard.db.schema import Channel, Message, WebhookEvent
from switchboard.jsonrows import to_json
from switchboard.uow import UnitOfWork

# Marks the reason of a delivery (IGNORED, or PROCESSED in part) with a part for a business account that
# is none of the receiving channel's organization's channels (e.g. a WhatsApp phone number id with no
# channel): shown to admins, and reprocessable once the missing channel was added.
NOT_ROUTED = "not routed: "

# Headers worth keeping for debugging/replay; never store auth headers or cookies.
KEPT_HEADERS = ("content-type", "user-agent", "x-hub-signature-256", "x-hub-signature", "content-length")


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers worth keeping with a delivery (lower-cased); never auth headers or cookies."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in KEPT_HEADERS}


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: int
    channel_id: int | None
    provider: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class WebhookEventView:
    id: int
    channel_id: int | None
    channel_key: str | None
    provider: str
    status: str
    reason: str | None
    received_at: datetime
    processed_at: datetime | None
    attempts: int
    body_preview: str

    @property
    def reprocessable(self) -> bool:
        """FAILED, or (a part) not routed to a channel: an admin may put it back in the queue."""
        if self.status == "FAILED":
            return True
        return self.status in ("IGNORED", "PROCESSED") and NOT_ROUTED in (self.reason or "")


def store_event(
    uow: UnitOfWork,
    *,
    provider: str,
    channel_id: int | None,
    body: bytes,
    headers: Mapping[str, str],
    status: str = "RECEIVED",
    reason: str | None = None,
    notify: str | None = None,
) -> int:
    """Insert the delivery exactly as received (the caller commits before it answers 200).

    ``notify`` names a LISTEN/NOTIFY channel woken in the same transaction, so the processing flow
    picks the event up at once instead of at its next poll.
    """
    kept = kept_headers(headers)
    event_id = uow.session.execute(
        insert(WebhookEvent)
        .values(provider=provider, channel_id=channel_id, body=body, headers=kept, status=status, reason=reason)
        .returning(WebhookEvent.id)
    ).scalar_one()
    if notify:
        uow.session.execute(select(func.pg_notify(notify, str(event_id))))
    return int(event_id)


def claim_pending(uow: UnitOfWork, *, limit: int = 100, max_attempts: int = 5) -> list[PendingEvent]:
    """Lock up to ``limit`` RECEIVED events (SKIP LOCKED: concurrent workers get disjoint sets).

    The rows stay locked until the caller's transaction ends, so the caller must process them and
    call :func:`record_outcomes` in the same unit of work.
    """
    rows = uow.session.execute(
        select(WebhookEvent.id, WebhookEvent.channel_id, WebhookEvent.provider, WebhookEvent.body,
               WebhookEvent.attempts)
        .where(WebhookEvent.status == "RECEIVED", WebhookEvent.attempts < max_attempts)
        # a paused channel's deliveries wait, in order, until it is resumed
        .where(~exists().where(Channel.id == WebhookEvent.channel_id, Channel.status == "paused"))
        # a delivery whose processing failed waits 4^attempts seconds before the next try
        .where((WebhookEvent.attempts == 0) | (WebhookEvent.processed_at.is_(None))
               | (WebhookEvent.processed_at <= func.now() - func.make_interval(0, 0, 0, 0, 0, 0,
                                                                                func.power(4, WebhookEvent.attempts))))
        .order_by(WebhookEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    return [PendingEvent(r.id, r.channel_id, r.provider, bytes(r.body), r.attempts) for r in rows]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one delivery: a final ``status`` (PROCESSED, IGNORED, REJECTED), or ``status`` None:
    a failed attempt, tried again after 4^attempts s and FAILED after the last attempt (shown to admins,
    who can reprocess it)."""

    event_id: int
    status: str | None
    reason: str | None = None


_RECORD_OUTCOMES = text("""
    update webhook_events as w
    set (status, reason, processed_at, attempts)
      = (coalesce(r.status, case when w.attempts + 1 >= :max_attempts then 'FAILED' else w.status end),
         r.reason, :now, w.attempts + 1)
    from json_to_recordset(cast(:rows as json)) as r(id bigint, status text, reason text)
    where w.id = r.id
""")


def record_outcomes(uow: UnitOfWork, outcomes: Sequence[Outcome], *, max_attempts: int = 5,
                    now: datetime | None = None) -> None:
    """Record the outcome of many deliveries in one statement (each counts one attempt). Does not commit."""
    if not outcomes:
        return
    rows = [{"id": o.event_id, "status": o.status, "reason": o.reason} for o in outcomes]
    uow.session.execute(_RECORD_OUTCOMES, {"max_attempts": max_attempts, "now": now or utcnow(),
                                           "rows": to_json(rows)})


def pending_send_keys(uow: UnitOfWork, channel_id: int, keys: Sequence[str]) -> set[str]:
    """Which of these idempotency keys belong to sends of the channel still PENDING or UNKNOWN (a status that echoes
    one settles a send whose result was never recorded, or whose outcome is unknown)."""
    if not keys:
        return set()
    return {str(k) for k in uow.session.execute(
        select(Message.idempotency_key)
        .where(Message.status.in_(("PENDING", "UNKNOWN")), Message.direction == "OUTBOUND",
               Message.channel_id == channel_id,
               Message.idempotency_key.in_(sorted(set(keys))))
    ).scalars()}


def list_events(
    uow: UnitOfWork,
    organization_id: int,
    *,
    statuses: tuple[str, ...] = ("REJECTED", "FAILED", "IGNORED"),
    limit: int = 100,
) -> list[WebhookEventView]:
    """Recent deliveries of an organization's channels for the admin view (never another organization's).

    Listing IGNORED deliveries also lists PROCESSED ones of which a part was not routed to any channel
    (their reason holds :data:`NOT_ROUTED`): something in them was not ingested either.
    """
    wanted: ColumnElement[bool] = WebhookEvent.status.in_(statuses)
    if "IGNORED" in statuses:
        wanted = or_(wanted, and_(WebhookEvent.status == "PROCESSED",
                                  WebhookEvent.reason.contains(NOT_ROUTED, autoescape=True)))
    rows = uow.session.execute(
        select(WebhookEvent, Channel.key)
        .outerjoin(Channel, Channel.id == WebhookEvent.channel_id)
        .where(wanted)
        .where(Channel.organization_id == organization_id)
        .order_by(WebhookEvent.id.desc())
        .limit(limit)
    ).all()
    out = []
    for ev, key in rows:
        preview = bytes(ev.body[:500]).decode("utf-8", errors="replace")
        out.append(WebhookEventView(ev.id, ev.channel_id, key, ev.provider, ev.status, ev.reason,
                                    ev.received_at, ev.processed_at, ev.attempts, preview))
    return out


def backlog(uow: UnitOfWork, *, older_than: timedelta = timedelta(0), organization_id: int | None = None) -> int:
    """Number of deliveries waiting to be processed (for /health; of one organization's channels for
    its admins)."""
    cutoff = utcnow() - older_than
    stmt = (select(func.count()).select_from(WebhookEvent)
            .where(WebhookEvent.status == "RECEIVED", WebhookEvent.received_at <= cutoff))
    if organization_id is not None:
        stmt = stmt.where(WebhookEvent.channel_id.in_(
            select(Channel.id).where(Channel.organization_id == organization_id)))
    return int(uow.session.execute(stmt).scalar_one())


def reprocess(uow: UnitOfWork, event_id: int, *, organization_id: int) -> bool:
    """Admin action: put a delivery of the organization's channels back in the queue: a FAILED one, or
    one with a part that was not routed (:data:`NOT_ROUTED`, e.g. after adding the missing channel;
    ingest is idempotent, so what was already ingested is not ingested twice).
    Returns False when there is no such delivery (other organization, processed, ignored for another
    reason)."""
    org_channels = select(Channel.id).where(Channel.organization_id == organization_id)
    not_routed = and_(WebhookEvent.status.in_(("IGNORED", "PROCESSED")),
                      WebhookEvent.reason.contains(NOT_ROUTED, autoescape=True))
    result = uow.session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_id, or_(WebhookEvent.status == "FAILED", not_routed),
               WebhookEvent.channel_id.in_(org_channels))
        .values(status="RECEIVED", attempts=0, processed_at=None, reason=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- the receiver's hot path: asyncpg with group commit ------------------------------------------

_INSERT_BATCH = """
with stored as (
    insert into webhook_events (provider, channel_id, body, headers, status, reason)
    select p, c, b, h::jsonb, s, r
    from unnest($1::text[], $2::bigint[], $3::bytea[], $4::text[], $5::text[], $6::text[]) as t(p, c, b, h, s, r)
    returning status
)
select pg_notify($7, '') from stored where $7 <> '' and status = 'RECEIVED' limit 1
"""

_CHANNEL_BY_KEY = "select id, status from channels where webhook_key = $1 and provider = $2"


async def store_events_batch(con: Any, rows: Sequence[tuple[str, int | None, bytes, dict[str, str], str, str | None]],
                             *, notify: str | None = None) -> None:
    """Insert many deliveries with ONE statement on an asyncpg connection outside a transaction block:
    one round trip, one commit (one fsync), all rows or none.

    Rows are ``(provider, channel_id, body, headers, status, reason)``; headers are filtered to
    :data:`KEPT_HEADERS`. ``notify`` wakes the processing flow when a RECEIVED row is among them; the
    notification is part of the same statement's transaction (sent only if the rows are committed).
    """
    await con.execute(
        _INSERT_BATCH,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [orjson.dumps(kept_headers(r[3])).decode() for r in rows],
        [r[4] for r in rows],
        [r[5] for r in rows],
        notify or "",
    )


async def channel_for_key(con: Any, provider: str, webhook_key: str) -> tuple[int, str] | None:
    """(id, status) of the channel a webhook URL names, or None."""
    row = await con.fetchrow(_CHANNEL_BY_KEY, webhook_key, provider)
    return (int(row["id"]), str(row["status"])) if row is not None else None
