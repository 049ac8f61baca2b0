"""Download media of incoming messages promptly (WhatsApp media ids expire after 7 days; Telegram media
is fetched through its message with the account's session).

Every platform gets the same treatment: size and type limits, content-addressed files under
``<media_dir>/<channel id>/``, a refusal (too large, type not allowed, gone) kept on the attachment
with its code, up to ``MAX_TRIES`` attempts for retryable errors. A platform rate limit (Telegram
FloodWait, WhatsApp 130429) defers the attachment until the retry-after without counting a try and
pauses that channel for the rest of the run; an authentication failure (expired token, Telegram
session logged out) leaves the channel's media pending and is recorded as the channel's last error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from connectors.base import AuthenticationError, ConnectorError, RateLimited, RetryableError
from connectors.media import DEFAULT_MAX_BYTES, StoredMedia
from connectors.telegram import get_telegram_gateway
from connectors.telegram.gateway import PeerRef, TelegramGateway
from connectors.telegram.media import download_message_media, parse_message_key
from switchboard.clock import utcnow
from switchboard.services.channels import record_channel_error
from switchboard.services.media import PendingMedia, pending_media, record_download
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.telegram import peer_for_chat, telegram_channel_credentials

log = logging.getLogger(__name__)

TelegramGatewayFactory = Callable[[Mapping[str, Any]], TelegramGateway]
DEFAULT_RATE_LIMIT_WAIT = 60.0  # seconds, when a rate limit comes without a retry-after


@dataclass
class MediaStats:
    stored: int = 0
    refused: int = 0
    retrying: int = 0
    deferred: int = 0  # left pending: the channel is rate limited or its credentials are refused


def _download_gateway(credentials: Mapping[str, Any]) -> TelegramGateway:
    return get_telegram_gateway(credentials, receive_updates=False)


class TelegramMedia:
    """Telegram downloads of one run: one gateway per account, chats' peers from the sync cursors."""

    def __init__(self, secret_key: bytes, factory: TelegramGatewayFactory = _download_gateway) -> None:
        self.secret_key = secret_key
        self.factory = factory
        self._gateways: dict[int, TelegramGateway] = {}
        self._peers: dict[tuple[int, int], PeerRef] = {}

    def gateway(self, uow: UnitOfWork, channel_id: int) -> TelegramGateway:
        gw = self._gateways.get(channel_id)
        if gw is None:
            gw = self.factory(telegram_channel_credentials(uow, channel_id, self.secret_key))
            self._gateways[channel_id] = gw
        return gw

    def download(self, uow: UnitOfWork, item: PendingMedia, dest_dir: Path, *, max_bytes: int) -> StoredMedia:
        chat_id, message_id = parse_message_key(item.provider_message_id or "")
        gw = self.gateway(uow, item.channel_id)
        peer = self._peers.get((item.channel_id, chat_id))
        if peer is None:
            peer = peer_for_chat(uow, item.channel_id, chat_id) or gw.resolve_peer(chat_id)
            self._peers[(item.channel_id, chat_id)] = peer
        return download_message_media(gw, peer, message_id, dest_dir, max_bytes=max_bytes,
                                      expected_media_id=item.provider_media_id)

    def close(self) -> None:
        gateways, self._gateways = self._gateways, {}
        for gw in gateways.values():
            try:
                gw.close()
            except Exception:  # closing must not hide the run's outcome
                log.exception("closing a Telegram gateway failed")


def download_media_once(engine: Engine, connectors: ConnectorCache, media_dir: Path, *, limit: int = 20,
                        max_bytes: int = DEFAULT_MAX_BYTES,
                        telegram_gateway: TelegramGatewayFactory | None = None) -> MediaStats:
    stats = MediaStats()
    telegram = TelegramMedia(connectors.secret_key, telegram_gateway or _download_gateway)
    paused: dict[int, datetime | None] = {}  # channel -> rate limited until (None: credentials refused)
    channel_errors: dict[int, str] = {}
    try:
        with UnitOfWork(engine) as uow:
            for item in pending_media(uow, limit=limit):
                if item.channel_id in paused:
                    until = paused[item.channel_id]
                    if until is not None:  # do not call a rate-limited platform again before it allows
                        record_download(uow, item.attachment_id, path=None, retryable=True, retry_at=until,
                                        count_try=False, error="waiting for the platform's rate limit")
                    stats.deferred += 1
                    continue
                dest = media_dir / str(item.channel_id)
                try:
                    if item.provider == "telegram":
                        stored = telegram.download(uow, item, dest, max_bytes=max_bytes)
                    else:
                        _, connector = connectors.get(item.channel_id)
                        download = getattr(connector, "download_media", None)
                        if download is None:  # platforms whose media comes as URLs (Meta) need no download
                            record_download(uow, item.attachment_id, path=None,
                                            error="no media download for this platform", error_code="unsupported")
                            stats.refused += 1
                            continue
                        stored = download(item.provider_media_id, dest, max_bytes=max_bytes)
                except RateLimited as exc:
                    until = utcnow() + timedelta(seconds=exc.retry_after or DEFAULT_RATE_LIMIT_WAIT)
                    record_download(uow, item.attachment_id, path=None, error=str(exc), retryable=True,
                                    retry_at=until, count_try=False)
                    paused[item.channel_id] = until
                    stats.deferred += 1
                except AuthenticationError as exc:  # the channel's problem, not this media's: keep it pending
                    paused[item.channel_id] = None
                    channel_errors[item.channel_id] = f"media download: {exc}"
                    stats.deferred += 1
                except RetryableError as exc:
                    retry_at = utcnow() + timedelta(seconds=exc.retry_after) if exc.retry_after else None
                    record_download(uow, item.attachment_id, path=None, error=str(exc), retryable=True,
                                    retry_at=retry_at)
                    stats.retrying += 1
                except ConnectorError as exc:
                    record_download(uow, item.attachment_id, path=None, error=str(exc), error_code=exc.code)
                    stats.refused += 1
                else:
                    record_download(uow, item.attachment_id, path=str(stored.path), sha256=stored.sha256,
                                    size_bytes=stored.size_bytes, mime_type=stored.mime_type)
                    stats.stored += 1
            uow.commit()
    finally:
        telegram.close()
    for channel_id, error in channel_errors.items():  # after the batch: this commits on its own
        log.warning("channel %s: %s", channel_id, error)
        with UnitOfWork(engine) as uow:
            record_channel_error(uow, channel_id, error)
            uow.commit()
    return stats
