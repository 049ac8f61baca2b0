"""Download media of incoming messages promptly (WhatsApp media ids expire after 7 days; Telegram media
is fetched through its message with the account's session).

No transaction is open while a file downloads: a run **claims** up to ``limit`` attachments in one
short transaction (``SKIP LOCKED``, a lease in ``attachments.download_claimed_until``), downloads
each outside any transaction, and records each outcome in its own short transaction (which ends
the lease). Two workers never claim the same attachment; a crashed worker's lease expires after
``lease_seconds`` and the next run takes the attachment again.

Every platform with the ``media`` capability gets the same treatment: size and type limits,
content-addressed files under ``<media_dir>/<channel id>/``, a refusal (too large, type not allowed,
gone, a platform without media downloads) kept on the attachment with its code, up to ``MAX_TRIES``
attempts for retryable errors. A platform rate limit (Telegram FloodWait, WhatsApp 130429) defers
the attachment until the retry-after without counting a try and pauses that channel for the rest
of the run; an authentication failure (expired token, Telegram session logged out) leaves the
channel's media pending and is recorded as the channel's last error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from connectors.base import MEDIA, AuthenticationError, ConnectorError, MediaRef, RateLimited, RetryableError
from connectors.media import DEFAULT_MAX_BYTES, StoredMedia
from switchboard.clock import utcnow
from switchboard.services.channels import credentials_refused
from switchboard.services.media import PendingMedia, claim_media, record_download, release_media
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache

log = logging.getLogger(__name__)

DEFAULT_RATE_LIMIT_WAIT = 60.0  # seconds, when a rate limit comes without a retry-after
DEFAULT_LEASE_SECONDS = 15 * 60  # longer than the slowest allowed download (100 MB)


@dataclass
class MediaStats:
    stored: int = 0
    refused: int = 0
    retrying: int = 0
    deferred: int = 0  # left pending: the channel is rate limited or its credentials are refused


def _finish(engine: Engine, attachment_id: int, **outcome: Any) -> None:
    """Record one attachment's outcome (or, without one, just end its lease) in one short transaction."""
    with UnitOfWork(engine) as uow:
        if outcome:
            record_download(uow, attachment_id, **outcome)
        else:
            release_media(uow, attachment_id)
        uow.commit()


def download_media_once(engine: Engine, connectors: ConnectorCache, media_dir: Path, *, limit: int = 20,
                        max_bytes: int = DEFAULT_MAX_BYTES, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                        now: datetime | None = None) -> MediaStats:
    """Claim, download (outside any transaction) and record up to ``limit`` pending media files."""
    stats = MediaStats()
    with UnitOfWork(engine) as uow:
        items = claim_media(uow, limit=limit, lease_seconds=lease_seconds, now=now)
        uow.commit()
    paused: dict[int, datetime | None] = {}  # channel -> rate limited until (None: credentials refused)
    channel_errors: dict[int, str] = {}
    for item in items:
        if item.channel_id in paused:
            until = paused[item.channel_id]
            if until is None:
                _finish(engine, item.attachment_id)
            else:  # do not call a rate-limited platform again before it allows
                _finish(engine, item.attachment_id, path=None, retryable=True, retry_at=until, count_try=False,
                        error="waiting for the platform's rate limit")
            stats.deferred += 1
            continue
        try:
            stored = _fetch(connectors, item, media_dir / str(item.channel_id), max_bytes)
        except RateLimited as exc:
            until = utcnow() + timedelta(seconds=exc.retry_after or DEFAULT_RATE_LIMIT_WAIT)
            _finish(engine, item.attachment_id, path=None, error=str(exc), retryable=True, retry_at=until,
                    count_try=False)
            paused[item.channel_id] = until
            stats.deferred += 1
        except AuthenticationError as exc:  # the channel's problem, not this media's: keep it pending
            _finish(engine, item.attachment_id)
            paused[item.channel_id] = None
            channel_errors[item.channel_id] = f"media download: {exc}"
            stats.deferred += 1
        except RetryableError as exc:
            retry_at = utcnow() + timedelta(seconds=exc.retry_after) if exc.retry_after else None
            _finish(engine, item.attachment_id, path=None, error=str(exc), retryable=True, retry_at=retry_at)
            stats.retrying += 1
        except ConnectorError as exc:  # refused (too large, type, gone, no media downloads on this platform)
            _finish(engine, item.attachment_id, path=None, error=str(exc), error_code=exc.code)
            stats.refused += 1
        except Exception as exc:  # unexpected (unreadable credentials...): retried, the run goes on
            log.exception("media download of attachment %s failed", item.attachment_id)
            _finish(engine, item.attachment_id, path=None, error=f"{exc.__class__.__name__}: {exc}", retryable=True)
            stats.retrying += 1
        else:
            _finish(engine, item.attachment_id, path=str(stored.path), sha256=stored.sha256,
                    size_bytes=stored.size_bytes, mime_type=stored.mime_type)
            stats.stored += 1
    for channel_id, error in channel_errors.items():
        log.warning("channel %s: %s", channel_id, error)
        with UnitOfWork(engine) as uow:
            credentials_refused(uow, channel_id, error)
            uow.commit()
    return stats


def _fetch(connectors: ConnectorCache, item: PendingMedia, dest: Path, max_bytes: int) -> StoredMedia:
    _, media = connectors.port(item.channel_id, MEDIA)  # Unsupported (refused) for platforms without it
    return media.fetch_media(MediaRef(item.provider_media_id, item.provider_message_id, item.inline, item.mime_type),
                             dest, max_bytes=max_bytes)
