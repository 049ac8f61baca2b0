"""Telegram pipelines: wire the gateway port to the domain services.

- :func:`sync_telegram_channel` — incremental dialogs/history sync of one account; every batch is
  ingested together with its chat cursor in ONE transaction (cursor stored only with its batch).
- :func:`run_listener` / :func:`handle_event` — live events (new, edited, deleted, read).
- :func:`peer_for_chat` — the peer (access hash) the sync stored for a chat: the outbox's Telegram
  sends and the media downloads use it through :class:`connectors.telegram.TelegramConnector`.
- Prefect flows ``telegram-sync`` (all active Telegram channels, or one) and ``telegram-listener``.

The listener never advances the sync cursors: the sync stays the source of completeness (it
refetches from the last batch it stored; ingest dedupes on the message key), so an event missed
while the listener was down is still picked up by the next sync.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from connectors.base import AuthenticationError, RateLimited, RetryableError
from connectors.telegram import get_telegram_gateway
from connectors.telegram.gateway import (
    PeerRef,
    TelegramGateway,
    TgEvent,
    TgMessagesDeleted,
    TgOutboxRead,
)
from connectors.telegram.mapping import event_items, message_key
from connectors.telegram.sync import ChatCursor, SyncStats, sync_batches
from switchboard.clock import utcnow
from switchboard.db.schema import Message, SyncCursor
from switchboard.errors import InvalidInput
from switchboard.services.channels import (
    channel_credentials,
    credentials_refused,
    get_channel,
    record_channel_error,
)
from switchboard.services.sync_progress import Progress, ProgressCallback, record_progress
from switchboard.types import Actor, MessageDeletion, ParsedItem, ReadWatermark
from switchboard.uow import UnitOfWork
from switchboard.workflows.progress import notify, report_progress

log = logging.getLogger(__name__)

GatewayFactory = Callable[[Mapping[str, Any]], TelegramGateway]

__all__ = [
    "SyncReport",
    "ListenerStats",
    "get_telegram_gateway",
    "load_chat_cursors",
    "telegram_channel_credentials",
    "sync_telegram_channel",
    "handle_event",
    "run_listener",
    "peer_for_chat",
]


# --- small services ----------------------------------------------------------------------------


def load_chat_cursors(uow: UnitOfWork, channel_id: int) -> dict[str, ChatCursor]:
    """The per-chat sync cursors of one Telegram channel (unreadable ones are skipped and logged)."""
    rows = uow.session.execute(
        select(SyncCursor.scope, SyncCursor.cursor)
        .where(SyncCursor.channel_id == channel_id, SyncCursor.scope.startswith("chat:"))
    ).all()
    out: dict[str, ChatCursor] = {}
    for scope, value in rows:
        try:
            out[scope] = ChatCursor.from_json(value)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("telegram channel %s: ignoring unreadable cursor %s: %s", channel_id, scope, exc)
    return out


def peer_for_chat(uow: UnitOfWork, channel_id: int, marked_id: int) -> PeerRef | None:
    """The peer (with access hash) the sync stored for one chat, if any."""
    value = uow.session.execute(
        select(SyncCursor.cursor).where(SyncCursor.channel_id == channel_id,
                                        SyncCursor.scope == f"chat:{marked_id}")
    ).scalar_one_or_none()
    if value is None:
        return None
    try:
        return ChatCursor.from_json(value).peer
    except (ValueError, KeyError, TypeError):
        return None


def telegram_channel_credentials(uow: UnitOfWork, channel_id: int, secret_key: bytes) -> dict[str, Any]:
    """Decrypted credentials of a Telegram channel; InvalidInput if the channel is not Telegram."""
    channel = get_channel(uow, channel_id)
    if channel.provider != "telegram":
        raise InvalidInput(f"channel {channel.key!r} is a {channel.provider} channel, not Telegram")
    return channel_credentials(uow, Actor.system(channel.organization_id), channel_id, secret_key)


def _deleted_keys(uow: UnitOfWork, channel_id: int, message_ids: tuple[int, ...]) -> list[str]:
    """Keys of stored messages of private chats/basic groups with these ids (ids are unique per
    account there, so each id matches at most one chat)."""
    keys: list[str] = []
    for mid in message_ids:
        rows = uow.session.execute(
            select(Message.provider_message_id).where(
                Message.channel_id == channel_id, Message.provider_message_id.like(f"%:{int(mid)}"))
        ).scalars().all()
        for key in rows:
            chat, _, tail = (key or "").partition(":")
            try:
                if tail == str(mid) and PeerRef.from_marked(int(chat)).peer_type != "channel":
                    keys.append(str(key))
            except ValueError:
                continue
    return keys


def resolve_event_items(uow: UnitOfWork, channel_id: int, event: TgEvent) -> list[ParsedItem]:
    """Domain items for one live event, completed with what only the database knows."""
    items = event_items(event)
    if isinstance(event, TgMessagesDeleted) and event.peer is None:
        return [MessageDeletion(provider_message_id=key, deleted_at=event.occurred_at,
                                provider_contact_id=key.partition(":")[0], raw={"message_ids": list(event.message_ids)})
                for key in _deleted_keys(uow, channel_id, event.message_ids)]
    if isinstance(event, TgOutboxRead):
        key = message_key(event.peer, event.max_id)
        sent_at = uow.session.execute(
            select(Message.sent_at).where(Message.channel_id == channel_id, Message.provider_message_id == key)
        ).scalar_one_or_none()
        if sent_at is not None:  # everything we sent in this chat up to that message was read
            return [ReadWatermark(provider_contact_id=str(event.peer.marked_id), status="READ",
                                  watermark=sent_at, occurred_at=event.occurred_at, provider_message_ids=(key,))]
    return items


# --- sync --------------------------------------------------------------------------------------

PROGRESS_JOB = "telegram-sync"


@dataclass
class SyncReport:
    channel_id: int
    dialogs: int = 0
    chats_fetched: int = 0
    chats_skipped: int = 0
    messages_fetched: int = 0
    messages_created: int = 0
    messages_duplicate: int = 0
    conversations_created: int = 0
    batches: int = 0
    flood_waits: list[int] = field(default_factory=list)
    rate_limited_for: float | None = None  # set when a long FloodWait stopped the run early
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def sync_telegram_channel(
    engine: Engine,
    channel_id: int,
    gateway_factory: GatewayFactory = get_telegram_gateway,
    *,
    secret_key: bytes | None = None,
    batch_size: int = 100,
    max_messages_per_chat: int | None = None,
    flood_sleep_threshold: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    now: datetime | None = None,
    on_progress: ProgressCallback | None = None,
) -> SyncReport:
    """Sync one Telegram account incrementally. Stops early (reported, channel error recorded) on
    a long FloodWait; an unauthorized session is recorded on the channel and raised.

    After each batch its progress (chats done of the account's dialogs, messages fetched) is stored
    with the batch and handed to ``on_progress``; the run's end reports it finished."""
    started = time.monotonic()
    started_at = now or utcnow()
    if secret_key is None:
        from switchboard.settings import get_settings

        secret_key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        creds = telegram_channel_credentials(uow, channel_id, secret_key)
        cursors = load_chat_cursors(uow, channel_id)
    if not creds.get("session"):
        raise InvalidInput("the Telegram account of this channel is not connected yet: log in on the "
                           "Telegram login page first")
    from switchboard.services.ingest import ingest_items

    report = SyncReport(channel_id)
    stats = SyncStats()

    def progress(*, chat_open: bool = False, finished: bool = False) -> Progress:
        return Progress(channel_id, PROGRESS_JOB, started_at, chats_total=stats.dialogs or None,
                        chats_done=stats.chats_fetched + stats.chats_skipped - chat_open,
                        messages_done=stats.messages, finished=finished)

    gateway = gateway_factory(creds)
    try:
        for batch in sync_batches(gateway, cursors, batch_size=batch_size,
                                  max_messages_per_chat=max_messages_per_chat,
                                  flood_sleep_threshold=flood_sleep_threshold, sleep=sleep, stats=stats):
            done = progress(chat_open=batch.cursor.top_message_id < batch.dialog.top_message_id)
            with UnitOfWork(engine) as uow:
                result = ingest_items(uow, channel_id=channel_id, items=batch.items, now=now,
                                      cursor=(batch.scope, batch.cursor.to_json()))
                record_progress(uow, done, now=now or utcnow())
                uow.commit()
            notify(on_progress, done)
            report.batches += 1
            report.messages_created += result.messages_created
            report.messages_duplicate += result.messages_duplicate
            report.conversations_created += result.conversations_created
    except RateLimited as exc:
        report.rate_limited_for = exc.retry_after
        with UnitOfWork(engine) as uow:
            record_channel_error(uow, channel_id, f"Telegram sync paused: {exc}", now=now)
            uow.commit()
    except AuthenticationError as exc:
        with UnitOfWork(engine) as uow:
            credentials_refused(uow, channel_id, f"Telegram: {exc}", now=now)
            uow.commit()
        raise
    finally:
        gateway.close()
        report.dialogs, report.chats_fetched, report.chats_skipped = (
            stats.dialogs, stats.chats_fetched, stats.chats_skipped)
        report.messages_fetched = stats.messages
        report.flood_waits = list(stats.flood_waits)
        report.seconds = round(time.monotonic() - started, 3)
    report_progress(engine, on_progress, progress(finished=True), now=now)
    if report.rate_limited_for is None:
        with UnitOfWork(engine) as uow:
            if get_channel(uow, channel_id).last_error:
                record_channel_error(uow, channel_id, None, now=now)
                uow.commit()
    return report


# --- live events -------------------------------------------------------------------------------


@dataclass
class ListenerStats:
    events: int = 0
    items: int = 0
    messages_created: int = 0
    failed: int = 0
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)


def handle_event(engine: Engine, channel_id: int, event: TgEvent, *, now: datetime | None = None,
                 stats: ListenerStats | None = None) -> None:
    """Ingest one live event in its own transaction (idempotent: a replay changes nothing)."""
    from switchboard.services.ingest import ingest_items

    with UnitOfWork(engine) as uow:
        items = resolve_event_items(uow, channel_id, event)
        result = ingest_items(uow, channel_id=channel_id, items=items, now=now or utcnow())
        uow.commit()
    if stats is not None:
        stats.items += len(items)
        stats.messages_created += result.messages_created


def run_listener(
    engine: Engine,
    channel_id: int,
    gateway: TelegramGateway,
    *,
    stop: threading.Event | None = None,
    max_seconds: float | None = None,
    retries: int = 3,
    retry_delay: float = 0.5,
) -> ListenerStats:
    """Ingest live events until ``stop`` is set (or ``max_seconds`` pass).

    A failing event is retried ``retries`` times; if it still fails it is logged and recorded as
    the channel's last error, and the listener goes on (the next sync re-fetches new messages).
    When the connection ends or fails (``listen`` returns, or raises a retryable error) the listener
    reconnects with a backoff (``retry_delay`` doubling up to 30 s while nothing arrives in between).
    """
    stop = stop or threading.Event()
    stats = ListenerStats()
    timer: threading.Timer | None = None
    if max_seconds is not None:
        timer = threading.Timer(max_seconds, stop.set)
        timer.daemon = True
        timer.start()

    def on_event(event: TgEvent) -> None:
        stats.events += 1
        for attempt in range(retries + 1):
            try:
                handle_event(engine, channel_id, event, stats=stats)
                return
            except Exception as exc:
                if attempt < retries:
                    time.sleep(retry_delay * (2 ** attempt))
                    continue
                stats.failed += 1
                stats.errors.append(f"{type(event).__name__}: {exc.__class__.__name__}: {exc}")
                log.exception("telegram channel %s: could not ingest %s", channel_id, type(event).__name__)
                try:
                    with UnitOfWork(engine) as uow:
                        record_channel_error(uow, channel_id, f"Telegram listener: {exc}")
                        uow.commit()
                except Exception:
                    log.exception("telegram channel %s: could not record the listener error", channel_id)

    drops = 0
    try:
        while not stop.is_set():
            events_before = stats.events
            try:
                gateway.listen(on_event, stop)
            except RetryableError as exc:
                log.warning("telegram channel %s: listener connection failed: %s", channel_id, exc)
            if stop.is_set():
                break
            drops = 0 if stats.events > events_before else drops + 1
            stats.reconnects += 1
            log.warning("telegram channel %s: listener connection ended; reconnecting", channel_id)
            stop.wait(min(retry_delay * 2 ** min(drops, 6), 30.0))
    finally:
        if timer is not None:
            timer.cancel()
    return stats
