"""Incremental history sync over the gateway port (no database here: the pipeline stores batches).

Per chat the cursor keeps the peer (type, id, access hash — a StringSession forgets them), the last
stored message id and the dialog's top message id seen at the last sync. A sync run lists the
dialogs, fetches only chats whose top message id changed, resumes each from its last stored
message id, and yields one :class:`ChatBatch` per page: the items plus the cursor to store in
the SAME transaction, after the items. A crash between batches loses nothing and repeats nothing
(the next run resumes from the last stored batch; ingest is idempotent on the message key).

FloodWait: short waits (<= ``flood_sleep_threshold`` seconds) are slept through; longer ones
raise :class:`connectors.base.RateLimited` with ``retry_after`` so the flow can reschedule.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from connectors.base import RateLimited
from connectors.telegram.gateway import DialogInfo, FloodWait, PeerRef, TelegramGateway
from connectors.telegram.mapping import dialog_contact, message_item
from switchboard.types import ParsedItem

T = TypeVar("T")


def chat_scope(peer: PeerRef) -> str:
    """The sync_cursors scope of one chat."""
    return f"chat:{peer.marked_id}"


@dataclass(frozen=True, slots=True)
class ChatCursor:
    peer: PeerRef
    last_message_id: int = 0
    top_message_id: int = 0
    title: str | None = None

    def to_json(self) -> str:
        return json.dumps({**self.peer.to_dict(), "last_message_id": self.last_message_id,
                           "top_message_id": self.top_message_id, "title": self.title})

    @staticmethod
    def from_json(text: str) -> ChatCursor:
        data: dict[str, Any] = json.loads(text)
        return ChatCursor(PeerRef.from_dict(data), int(data.get("last_message_id") or 0),
                          int(data.get("top_message_id") or 0), data.get("title"))


@dataclass(frozen=True, slots=True)
class ChatBatch:
    scope: str
    items: tuple[ParsedItem, ...]
    cursor: ChatCursor
    dialog: DialogInfo


@dataclass
class SyncStats:
    dialogs: int = 0
    chats_fetched: int = 0
    chats_skipped: int = 0
    messages: int = 0
    flood_waits: list[int] = field(default_factory=list)


def with_flood_wait(call: Callable[[], T], *, threshold: float, sleep: Callable[[float], None],
                    stats: SyncStats | None = None, max_retries: int = 3) -> T:
    """Run ``call``; sleep through short FloodWaits, raise RateLimited for long ones."""
    attempt = 0
    while True:
        try:
            return call()
        except FloodWait as exc:
            if stats is not None:
                stats.flood_waits.append(exc.seconds)
            attempt += 1
            if exc.seconds > threshold or attempt > max_retries:
                raise RateLimited(
                    f"Telegram FloodWait of {exc.seconds} s (longer than the {threshold:g} s we wait inline); "
                    "retry the sync later", retry_after=float(exc.seconds), code="FLOOD_WAIT") from exc
            sleep(float(exc.seconds))


def needs_fetch(dialog: DialogInfo, cursor: ChatCursor | None) -> bool:
    """A chat is fetched when it is new or its top message id changed since the last sync."""
    if cursor is None:
        return dialog.top_message_id > 0
    return dialog.top_message_id != cursor.top_message_id and dialog.top_message_id > cursor.last_message_id


def sync_batches(
    gateway: TelegramGateway,
    cursors: Mapping[str, ChatCursor],
    *,
    batch_size: int = 100,
    max_messages_per_chat: int | None = None,
    flood_sleep_threshold: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    stats: SyncStats | None = None,
) -> Iterator[ChatBatch]:
    """Yield one batch per fetched page of every chat that changed, oldest messages first.

    A chat whose top message changed but has nothing newer than the cursor (the top message was
    deleted) yields one empty batch so its cursor records the new top id.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    stats = stats if stats is not None else SyncStats()

    def guarded(call: Callable[[], T]) -> T:
        return with_flood_wait(call, threshold=flood_sleep_threshold, sleep=sleep, stats=stats)

    dialogs = guarded(gateway.iter_dialogs)
    stats.dialogs = len(dialogs)
    for dialog in dialogs:
        scope = chat_scope(dialog.peer)
        previous = cursors.get(scope)
        if not needs_fetch(dialog, previous):
            stats.chats_skipped += 1
            continue
        stats.chats_fetched += 1
        peer = dialog.peer
        if peer.access_hash is None and previous is not None and previous.peer.access_hash is not None:
            peer = replace(peer, access_hash=previous.peer.access_hash)
        cursor = ChatCursor(peer, previous.last_message_id if previous else 0,
                            previous.top_message_id if previous else 0, dialog.title)
        contact = dialog_contact(dialog)
        fetched = 0
        yielded = False
        while True:
            limit = batch_size
            if max_messages_per_chat is not None:
                limit = min(limit, max_messages_per_chat - fetched)
                if limit <= 0:
                    break
            min_id = cursor.last_message_id
            page = guarded(partial(gateway.iter_history, peer, min_id, limit))
            page = sorted((m for m in page if m.id > min_id), key=lambda m: m.id)
            if not page:
                break
            fetched += len(page)
            stats.messages += len(page)
            last_id = page[-1].id
            done = len(page) < limit
            top = dialog.top_message_id if done or last_id >= dialog.top_message_id else cursor.top_message_id
            cursor = replace(cursor, last_message_id=last_id, top_message_id=top)
            yield ChatBatch(scope, tuple(message_item(m, contact) for m in page), cursor, dialog)
            yielded = True
            if done:
                break
        if not yielded:
            yield ChatBatch(scope, (), replace(cursor, top_message_id=dialog.top_message_id), dialog)
