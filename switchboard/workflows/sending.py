"""PENDING outbound messages → connector → SENT / retry / dead letter (the ``send-outbox`` flow's work).

Per-channel rate limits never make one channel wait for another: a job whose channel has no send
token left is not slept on; its claim is released with the time its token is due (it is claimed
again then), and the run goes on with the other channels' jobs.

The messaging window is checked again right before the platform is called: a reply queued inside the
window but sent after it closed fails with the window's sentence (code ``outside_window``) and the
platform is not called; Messenger/Instagram replies of a person between 24 hours and 7 days after
the customer's last message go with the ``HUMAN_AGENT`` tag.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from connectors.base import SEND, AuthenticationError, ConnectorError, OutsideWindowError, RetryableError
from switchboard.clock import utcnow
from switchboard.domain.conversation import AuthorKind
from switchboard.domain.messaging_window import messaging_window
from switchboard.services.channels import credentials_refused
from switchboard.services.outbox import OutboundJob, claim_due, record_failure, record_sent, release_claims
from switchboard.types import OutboundRequest, RunStats
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache

log = logging.getLogger(__name__)


class RateLimiter:
    """Per-channel token bucket (in process): on average ``rate`` sends per second per channel.

    The bucket holds ``max(1, rate)`` tokens, so a rate below one per second (0.5 = one send every
    2 s) still reaches a whole token. :meth:`acquire` never sleeps.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._state: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, channel_id: int, rate: float) -> float:
        """Take a token and return 0.0, or take nothing and return the seconds until one is due."""
        if not rate > 0:
            raise ValueError(f"channel {channel_id}: rate limit must be more than 0 per second, not {rate}")
        capacity = max(1.0, float(rate))
        with self._lock:
            now = self._clock()
            tokens, last = self._state.get(channel_id, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1:
                self._state[channel_id] = (tokens - 1, now)
                return 0.0
            self._state[channel_id] = (tokens, now)
            return (1 - tokens) / rate


@dataclass
class OutboxStats(RunStats):
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    deferred: int = 0  # released unsent: their channel's rate limit allows them a little later
    errors: list[str] = field(default_factory=list)


def send_outbox_once(engine: Engine, connectors: ConnectorCache, limiter: RateLimiter | None = None, *,
                     limit: int = 50, max_attempts: int = 6, now: datetime | None = None) -> OutboxStats:
    """Claim due PENDING outbound messages and send each through its channel's connector; jobs of a
    channel out of send tokens are deferred to when its next token is due (never slept on)."""
    limiter = limiter or RateLimiter()
    stats = OutboxStats()
    with UnitOfWork(engine) as uow:
        jobs = claim_due(uow, limit=limit, now=now)
        uow.commit()
    stats.claimed = len(jobs)
    deferred: list[tuple[int, datetime]] = []
    waiting: dict[int, int] = {}  # channel -> its jobs deferred in this run (each one token later)
    for job in jobs:
        try:
            tag = _window_tag(job, now or utcnow())
            channel, sender = connectors.port(job.channel_id, SEND)
            delay = limiter.acquire(job.channel_id, channel.rate_limit_per_second)
            if delay > 0:
                queued = waiting.get(job.channel_id, 0)
                waiting[job.channel_id] = queued + 1
                at = (now or utcnow()) + timedelta(seconds=delay + queued / channel.rate_limit_per_second)
                deferred.append((job.message_id, at))
                continue
            result = sender.send(
                OutboundRequest(
                    recipient_id=job.recipient_id,
                    body=job.body,
                    attachments=job.attachments,
                    reply_to_provider_message_id=job.reply_to_provider_message_id,
                    idempotency_key=job.idempotency_key,
                    tag=tag,
                    template=job.template,
                )
            )
        except Exception as exc:  # every failure is kept on the message, never lost
            if not isinstance(exc, ConnectorError):  # network errors etc.: retried
                log.exception("outbox: sending message %s failed", job.message_id)
            retryable = exc.retryable if isinstance(exc, ConnectorError) else True
            _record_failure(engine, job.channel_id, job.message_id, exc, retryable=retryable,
                            max_attempts=max_attempts, now=now)
            if retryable:
                stats.retrying += 1
            else:
                stats.failed += 1
            stats.errors.append(str(exc))
            continue
        with UnitOfWork(engine) as uow:
            record_sent(uow, job.message_id, provider_message_id=result.provider_message_id,
                        sent_at=result.sent_at)
            uow.commit()
        stats.sent += 1
    if deferred:
        with UnitOfWork(engine) as uow:
            release_claims(uow, deferred)
            uow.commit()
        stats.deferred = len(deferred)
    return stats


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


def _record_failure(engine: Engine, channel_id: int, message_id: int, exc: Exception, *, retryable: bool,
                    max_attempts: int, now: datetime | None) -> None:
    """One failed send in its own transaction: the message's retry or dead letter (and the channel's
    error when its credentials were refused)."""
    code, message = (exc.code, exc.message) if isinstance(exc, ConnectorError) else (
        None, f"{exc.__class__.__name__}: {exc}")
    retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
    with UnitOfWork(engine) as uow:
        record_failure(uow, message_id, error_code=code, error_message=message, retryable=retryable,
                       retry_after=retry_after, max_attempts=max_attempts, now=now)
        if isinstance(exc, AuthenticationError):
            credentials_refused(uow, channel_id, f"authentication failed: {exc}", now=now)
        uow.commit()
