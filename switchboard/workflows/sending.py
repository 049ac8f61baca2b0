"""PENDING outbound messages → connector → SENT / retry / dead letter (the ``send-outbox`` flow's work)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from connectors.base import AuthenticationError, ConnectorError, RetryableError
from switchboard.services.channels import record_channel_error
from switchboard.types import OutboundRequest
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache

log = logging.getLogger(__name__)


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
        uow.commit()
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
                uow.commit()
            stats.retrying += 1
            stats.errors.append(str(exc))
            continue
        except ConnectorError as exc:
            with UnitOfWork(engine) as uow:
                record_failure(uow, job.message_id, error_code=exc.code, error_message=exc.message,
                               retryable=False, max_attempts=max_attempts, now=now)
                if isinstance(exc, AuthenticationError):
                    record_channel_error(uow, job.channel_id, f"authentication failed: {exc}", now=now)
                uow.commit()
            stats.failed += 1
            stats.errors.append(str(exc))
            continue
        except Exception as exc:  # network errors etc.: retry, keep the reason visible on the message
            log.exception("outbox: sending message %s failed", job.message_id)
            with UnitOfWork(engine) as uow:
                record_failure(uow, job.message_id, error_code=None,
                               error_message=f"{exc.__class__.__name__}: {exc}", retryable=True,
                               max_attempts=max_attempts, now=now)
                uow.commit()
            stats.retrying += 1
            stats.errors.append(str(exc))
            continue
        with UnitOfWork(engine) as uow:
            record_sent(uow, job.message_id, provider_message_id=result.provider_message_id,
                        sent_at=result.sent_at)
            uow.commit()
        stats.sent += 1
    return stats
