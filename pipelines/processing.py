"""The work the flows do, as plain functions (tested without Prefect).

- :func:`process_webhooks_once`: stored deliveries → parsed items → domain ingest.
- :func:`send_outbox_once`: PENDING outbound messages → connector → SENT / retry / dead letter.
- :func:`maintain_once`: presence sweep (release disconnected agents' work) and auto-assignment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from connectors.base import AuthenticationError, ConnectorError, PayloadError, RetryableError
from pipelines.channels import ConnectorCache
from pipelines.routing import parse_and_route
from switchboard.clock import utcnow
from switchboard.services import webhooks
from switchboard.services.channels import record_channel_error
from switchboard.types import Ignored, OutboundRequest, ParsedItem, StatusUpdate
from switchboard.uow import UnitOfWork

log = logging.getLogger(__name__)

UNMATCHED_STATUS_ATTEMPTS = 3  # tries (4 s, 16 s apart) before a status for an unknown message is dropped


@dataclass
class WebhookStats:
    claimed: int = 0
    processed: int = 0
    ignored: int = 0
    rejected: int = 0
    errors: int = 0
    messages_created: int = 0
    statuses_applied: int = 0

    def add(self, other: WebhookStats) -> None:
        for k, v in vars(other).items():
            setattr(self, k, getattr(self, k) + v)


def process_webhooks_once(engine: Engine, connectors: ConnectorCache, *, limit: int = 200,
                          now: datetime | None = None) -> WebhookStats:
    """Process up to ``limit`` stored deliveries in one transaction (a savepoint per delivery).

    Safe to run from several workers at once: deliveries are claimed with SKIP LOCKED, and ingest is
    idempotent by provider message id, so a delivery replayed by the platform adds nothing.
    """
    from switchboard.services.ingest import ingest_items

    stats = WebhookStats()
    with UnitOfWork(engine) as uow:
        events = webhooks.claim_pending(uow, limit=limit)
        stats.claimed = len(events)
        for ev in events:
            if ev.channel_id is None:
                webhooks.finish(uow, ev.id, status="REJECTED", reason="delivery has no channel")
                stats.rejected += 1
                continue
            try:
                routed = parse_and_route(connectors, ev.channel_id, ev.body)  # per channel (WhatsApp numbers)
                items = routed.items
            except PayloadError as exc:
                webhooks.finish(uow, ev.id, status="REJECTED", reason=f"unrecognised payload: {exc}")
                stats.rejected += 1
                continue
            except Exception as exc:
                log.exception("webhook %s: parsing failed", ev.id)
                webhooks.record_attempt_error(uow, ev.id, f"{exc.__class__.__name__}: {exc}")
                stats.errors += 1
                continue
            ignored = [i for i in items if isinstance(i, Ignored)]
            if len(ignored) == len(items):
                reason = "; ".join(sorted({i.reason for i in ignored})) or "empty delivery"
                webhooks.finish(uow, ev.id, status="IGNORED", reason=reason)
                stats.ignored += 1
                continue
            savepoint = uow.session.begin_nested()
            try:
                results = []
                for channel_id, batch in routed.batches.items():
                    if not batch:
                        continue
                    _adopt_reported_sends(uow, channel_id, batch)
                    results.append(ingest_items(uow, channel_id=channel_id, items=batch, now=now, commit=False))
                savepoint.commit()
            except Exception as exc:
                savepoint.rollback()
                log.exception("webhook %s: ingest failed", ev.id)
                webhooks.record_attempt_error(uow, ev.id, f"{exc.__class__.__name__}: {exc}")
                stats.errors += 1
                continue
            unmatched = [pmid for r in results for pmid in r.unmatched_status_ids]
            if unmatched and ev.attempts + 1 < UNMATCHED_STATUS_ATTEMPTS:
                # A status can overtake our own record of the send (the platform answers the send,
                # then reports "sent" before record_sent committed): try the delivery again shortly.
                webhooks.record_attempt_error(uow, ev.id, f"status for a message not stored yet: "
                                              f"{', '.join(sorted(unmatched))[:200]}; will retry")
                stats.processed += 1
                continue
            notes = sorted({i.reason for i in ignored}) + routed.notes
            if unmatched:
                notes.append(f"status for unknown messages ignored: {', '.join(sorted(unmatched))[:200]}")
            webhooks.finish(uow, ev.id, status="PROCESSED", reason="; ".join(notes) or None)
            stats.processed += 1
            stats.messages_created += sum(r.messages_created for r in results)
            stats.statuses_applied += sum(r.statuses_applied for r in results)
        uow.commit()
    return stats


def _adopt_reported_sends(uow: UnitOfWork, channel_id: int, items: Sequence[ParsedItem]) -> None:
    """Statuses that echo our idempotency key settle sends whose result was never recorded."""
    from switchboard.services.outbox import adopt_reported_send

    for item in items:
        if isinstance(item, StatusUpdate) and item.status != "FAILED":
            key = item.raw.get("biz_opaque_callback_data") if isinstance(item.raw, dict) else None
            if key:
                adopt_reported_send(uow, channel_id, idempotency_key=str(key),
                                    provider_message_id=item.provider_message_id, sent_at=item.occurred_at)


class RateLimiter:
    """Per-channel token bucket (in process): at most ``rate`` sends per second per channel."""

    def __init__(self) -> None:
        self._state: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, channel_id: int, rate: float) -> None:
        rate = max(rate, 0.1)
        while True:
            with self._lock:
                now = time.monotonic()
                tokens, last = self._state.get(channel_id, (rate, now))
                tokens = min(rate, tokens + (now - last) * rate)
                if tokens >= 1:
                    self._state[channel_id] = (tokens - 1, now)
                    return
                self._state[channel_id] = (tokens, now)
                delay = (1 - tokens) / rate
            time.sleep(delay)


@dataclass
class OutboxStats:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: OutboxStats) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.errors.extend(other.errors)


def send_outbox_once(engine: Engine, connectors: ConnectorCache, limiter: RateLimiter | None = None, *,
                     limit: int = 50, max_attempts: int = 6, now: datetime | None = None) -> OutboxStats:
    """Claim due PENDING outbound messages and send each through its channel's connector."""
    from switchboard.services.outbox import claim_due, record_failure, record_sent

    limiter = limiter or RateLimiter()
    stats = OutboxStats()
    with UnitOfWork(engine) as uow:
        jobs = claim_due(uow, limit=limit, now=now)
    stats.claimed = len(jobs)
    for job in jobs:
        try:
            channel, connector = connectors.get(job.channel_id)
            limiter.wait(job.channel_id, channel.rate_limit_per_second)
            result = connector.send(
                OutboundRequest(
                    recipient_id=job.recipient_id,
                    body=job.body,
                    attachments=job.attachments,
                    reply_to_provider_message_id=job.reply_to_provider_message_id,
                    idempotency_key=job.idempotency_key,
                )
            )
        except RetryableError as exc:
            with UnitOfWork(engine) as uow:
                record_failure(uow, job.message_id, error_code=exc.code, error_message=exc.message,
                               retryable=True, retry_after=exc.retry_after, max_attempts=max_attempts, now=now)
            stats.retrying += 1
            stats.errors.append(str(exc))
            continue
        except ConnectorError as exc:
            with UnitOfWork(engine) as uow:
                record_failure(uow, job.message_id, error_code=exc.code, error_message=exc.message,
                               retryable=False, max_attempts=max_attempts, now=now)
                if isinstance(exc, AuthenticationError):
                    record_channel_error(uow, job.channel_id, f"authentication failed: {exc}", now=now)
            stats.failed += 1
            stats.errors.append(str(exc))
            continue
        except Exception as exc:  # network errors etc.: retry, keep the reason visible on the message
            log.exception("outbox: sending message %s failed", job.message_id)
            with UnitOfWork(engine) as uow:
                record_failure(uow, job.message_id, error_code=None,
                               error_message=f"{exc.__class__.__name__}: {exc}", retryable=True,
                               max_attempts=max_attempts, now=now)
            stats.retrying += 1
            stats.errors.append(str(exc))
            continue
        with UnitOfWork(engine) as uow:
            record_sent(uow, job.message_id, provider_message_id=result.provider_message_id,
                        sent_at=result.sent_at, now=now)
        stats.sent += 1
    return stats


def maintain_once(engine: Engine, *, now: datetime | None = None, away_after_s: int = 120,
                  offline_grace_s: int = 300) -> dict[str, Any]:
    """Presence sweep, then auto-assignment for organizations that turned it on."""
    from switchboard.services.assignment import auto_assign
    from switchboard.services.organizations import auto_assign_organization_ids
    from switchboard.services.presence import sweep

    now = now or utcnow()
    with UnitOfWork(engine) as uow:
        released = sweep(uow, now=now, away_after_s=away_after_s, offline_grace_s=offline_grace_s)
    assigned: list[tuple[int, int]] = []
    with UnitOfWork(engine) as uow:
        org_ids = auto_assign_organization_ids(uow)
    for org_id in org_ids:
        with UnitOfWork(engine) as uow:
            assigned.extend(auto_assign(uow, org_id, now=now))
    return {"released": len(released), "assigned": len(assigned)}
