"""PENDING outbound messages → connector → SENT / retry / dead letter / unknown (the ``send-outbox`` flow's work).

Exactly once, as far as each platform allows (``docs/delivery.md``):

* **Fencing.** ``claim_due`` leases each job with a fresh token. Right before the platform is called,
  one short transaction checks that this worker still owns the job (same token, lease not run out)
  and takes the channel's send slot; every result is recorded only under the same token, so a worker
  whose lease ran out and whose job another worker claimed records nothing.
* **Unknown outcomes.** A timeout or reset after the request may have reached the platform
  (``UnknownOutcomeError``) is never retried blindly: the message becomes UNKNOWN ("may have been
  sent") until the platform's report or a person settles it — unless the platform deduplicates on our
  key (Telegram's ``random_id``), then it is retried; ``AlreadySent`` settles it as SENT.
* **Shared rate limit.** Send slots come from :mod:`switchboard.services.send_rate` (PostgreSQL), so all
  worker processes together keep each channel's rate. A job whose channel has no slot now is not slept
  on: its claim is released with the time its slot is due, and the run goes on with the other jobs.

The messaging window is checked again right before the platform is called: a reply queued inside the
window but sent after it closed fails with the window's sentence (code ``outside_window``) and the
platform is not called; Messenger/Instagram replies of a person between 24 hours and 7 days after
the customer's last message go with the ``HUMAN_AGENT`` tag.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from connectors.base import (
    SEND,
    AlreadySent,
    AuthenticationError,
    ConnectorError,
    OutsideWindowError,
    RetryableError,
    UnknownOutcomeError,
)
from switchboard.clock import utcnow
from switchboard.domain.conversation import AuthorKind
from switchboard.domain.messaging_window import messaging_window
from switchboard.services.channels import credentials_refused
from switchboard.services.outbox import (
    OutboundJob,
    claim_due,
    record_failure,
    record_sent,
    record_unknown,
    release_claims,
    still_owned,
)
from switchboard.services.send_rate import send_interval, take_send_slot
from switchboard.types import OutboundRequest, RunStats
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache

log = logging.getLogger(__name__)


@dataclass
class OutboxStats(RunStats):
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    unknown: int = 0  # may have been sent: waiting for the platform's report or a person
    deferred: int = 0  # released unsent: their channel's rate limit allows them a little later
    stale: int = 0  # claims settled meanwhile (another worker's claim, the platform's report): nothing recorded
    errors: list[str] = field(default_factory=list)


def send_outbox_once(engine: Engine, connectors: ConnectorCache, *, limit: int = 50, max_attempts: int = 6,
                     lease_seconds: int = 60, now: datetime | None = None) -> OutboxStats:
    """Claim due PENDING outbound messages and send each through its channel's connector; jobs of a
    channel out of send slots are deferred to when their slot is due (never slept on)."""
    stats = OutboxStats()
    with UnitOfWork(engine) as uow:
        jobs = claim_due(uow, limit=limit, now=now, lease_seconds=lease_seconds)
        uow.commit()
    stats.claimed = len(jobs)
    deferred: list[tuple[int, int, datetime]] = []
    waiting: dict[int, int] = {}  # channel -> its jobs deferred in this run (each one slot later)
    next_slot: dict[int, datetime] = {}  # channel -> when its next slot is due (refused once in this run)
    for job in jobs:
        at = now or utcnow()
        try:
            tag = _window_tag(job, at)
            channel, sender = connectors.port(job.channel_id, SEND)
            slot = next_slot.get(job.channel_id)
            delay = _begin_send(engine, job, channel.rate_limit_per_second, at) if slot is None or slot <= at \
                else (slot - at).total_seconds()  # refused already: no need to ask again before its slot
            if delay is None:  # another worker owns it now
                stats.stale += 1
                continue
            if delay > 0:
                queued = waiting.get(job.channel_id, 0)
                waiting[job.channel_id] = queued + 1
                next_slot.setdefault(job.channel_id, at + timedelta(seconds=delay))
                due = at + timedelta(seconds=delay + queued * send_interval(channel.rate_limit_per_second))
                deferred.append((job.message_id, job.token, due))
                continue
            result = sender.send(_request(job, tag))
            pmid: str | None = result.provider_message_id
            sent_at = result.sent_at
        except AlreadySent:  # the platform already has it: an earlier attempt of this job went out
            pmid, sent_at = None, at
        except UnknownOutcomeError as exc:
            _settle(engine, job, stats, partial(
                record_unknown, message_id=job.message_id, token=job.token, error_code=exc.code,
                error_message=exc.message, retry_is_safe=exc.retry_is_safe, max_attempts=max_attempts, now=now))
            stats.unknown += 1
            stats.errors.append(str(exc))
            continue
        except Exception as exc:  # every failure is kept on the message, never lost
            if not isinstance(exc, ConnectorError):  # network errors etc.: retried
                log.exception("outbox: sending message %s failed", job.message_id)
            retryable = exc.retryable if isinstance(exc, ConnectorError) else True
            _record_failure(engine, job, exc, stats, retryable=retryable, max_attempts=max_attempts, now=now)
            if retryable:
                stats.retrying += 1
            else:
                stats.failed += 1
            stats.errors.append(str(exc))
            continue
        if _settle(engine, job, stats, partial(record_sent, message_id=job.message_id, token=job.token,
                                               provider_message_id=pmid, sent_at=sent_at)):
            stats.sent += 1
    if deferred:
        with UnitOfWork(engine) as uow:
            release_claims(uow, deferred)
            uow.commit()
        stats.deferred = len(deferred)
    return stats


def _begin_send(engine: Engine, job: OutboundJob, rate: float, now: datetime) -> float | None:
    """Right before the platform is called, in one short transaction: None when this worker no longer
    owns the job (fencing); else the channel's send slot: 0.0 taken, or the seconds until it is due."""
    with UnitOfWork(engine) as uow:
        if not still_owned(uow, job.message_id, job.token, now):
            return None
        delay = take_send_slot(uow, job.channel_id, rate, now)
        uow.commit()
    return delay


def _request(job: OutboundJob, tag: str | None) -> OutboundRequest:
    return OutboundRequest(recipient_id=job.recipient_id, body=job.body, attachments=job.attachments,
                           reply_to_provider_message_id=job.reply_to_provider_message_id,
                           idempotency_key=job.idempotency_key, tag=tag, template=job.template)


def _settle(engine: Engine, job: OutboundJob, stats: OutboxStats, record: Callable[[UnitOfWork], bool]) -> bool:
    """Record one job's result in its own transaction (``record(uow)`` is False when the claim went
    stale: another worker claimed the job, or the platform's report settled it first; then it is
    counted as such and nothing is recorded)."""
    with UnitOfWork(engine) as uow:
        done = bool(record(uow))
        uow.commit()
    if not done:
        stats.stale += 1
        log.info("outbox: message %s was settled meanwhile (another worker's claim or the platform's report); "
                 "this result is not recorded", job.message_id)
    return done


def _window_tag(job: OutboundJob, now: datetime) -> str | None:
    """The tag the send must carry (HUMAN_AGENT or None); OutsideWindowError when the platform's window
    no longer allows this message (it is failed with the reason, the platform is not called).
    Approved templates go at any time."""
    if job.template is not None:
        return None
    window = messaging_window(job.provider, job.last_inbound_at, now, human=job.author_kind == AuthorKind.AGENT)
    if not window.free_text_allowed:
        raise OutsideWindowError(window.reason, code="outside_window")
    return window.tag


def _record_failure(engine: Engine, job: OutboundJob, exc: Exception, stats: OutboxStats, *, retryable: bool,
                    max_attempts: int, now: datetime | None) -> None:
    """One failed send in its own transaction: the message's retry or dead letter (and the channel's
    error when its credentials were refused)."""
    code, message = (exc.code, exc.message) if isinstance(exc, ConnectorError) else (
        None, f"{exc.__class__.__name__}: {exc}")
    retry_after = exc.retry_after if isinstance(exc, RetryableError) else None

    def record(uow: UnitOfWork) -> bool:
        done = record_failure(uow, job.message_id, token=job.token, error_code=code, error_message=message,
                              retryable=retryable, retry_after=retry_after, max_attempts=max_attempts, now=now)
        if isinstance(exc, AuthenticationError):
            credentials_refused(uow, job.channel_id, f"authentication failed: {exc}", now=now)
        return done

    _settle(engine, job, stats, record)


def drain_outbox(engine: Engine, connectors: ConnectorCache, *, seconds: float, idle_seconds: float | None = None,
                 poll_seconds: float = 0.005, limit: int = 50, lease_seconds: int = 60,
                 max_attempts: int = 6) -> OutboxStats:
    """One sender process's loop (the fault tests' and the benchmark's workers): send for ``seconds``,
    or until nothing was due for ``idle_seconds``. A lost database connection (PostgreSQL restarting)
    ends the round, not the loop: the claims it held are taken again once their lease runs out."""
    total = OutboxStats()
    deadline = time.monotonic() + seconds
    idle_since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            stats = send_outbox_once(engine, connectors, limit=limit, lease_seconds=lease_seconds,
                                     max_attempts=max_attempts)
        except DBAPIError as exc:
            log.warning("outbox: database unavailable (%s); trying again", exc.__class__.__name__)
            total.errors.append(f"database: {exc.__class__.__name__}")
            time.sleep(0.2)
            continue
        total.add(stats)
        if stats.claimed:
            idle_since = time.monotonic()
        elif idle_seconds is not None and time.monotonic() - idle_since >= idle_seconds:
            break
        else:
            time.sleep(poll_seconds)
    return total
