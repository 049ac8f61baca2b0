"""Download the media of a stored Telegram message into local storage, with the same size and type
limits and the same content-addressed layout as WhatsApp media (:mod:`connectors.media`).

Telegram has no media URL and no standalone media id to fetch: a file is downloaded *through its
message* (``get_messages(peer, ids=...)`` then ``download_media``), which also gives a fresh file
reference. Switchboard stores each message as ``f"{marked_chat_id}:{message_id}"`` and the photo or
document id as the attachment's ``provider_media_id``; the chat's access hash comes from the sync
cursor (or the account's dialogs).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from connectors.base import PermanentError
from connectors.media import DEFAULT_ALLOWED_MIME, DEFAULT_MAX_BYTES, MediaSink, StoredMedia, base_mime
from connectors.telegram.gateway import PeerRef, TelegramGateway, TgMedia


def parse_message_key(key: str) -> tuple[int, int]:
    """``"<marked chat id>:<message id>"`` -> (marked chat id, message id); PermanentError otherwise."""
    chat, sep, mid = (key or "").partition(":")
    try:
        if not sep:
            raise ValueError(key)
        return int(chat), int(mid)
    except ValueError:
        raise PermanentError(f"{key!r} is not a Telegram message key (<chat id>:<message id>)",
                             code="BAD_MESSAGE_KEY") from None


class MediaLimits:
    """Refuse before any byte is downloaded: another file than the stored one, a type outside the
    allowed list, a declared size above the limit (the writer enforces the limit on the bytes too)."""

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 allowed_mime: Iterable[str] | None = DEFAULT_ALLOWED_MIME,
                 expected_media_id: str | None = None) -> None:
        self.max_bytes = max_bytes
        self.allowed = frozenset(base_mime(m) for m in allowed_mime) if allowed_mime is not None else None
        self.expected_media_id = expected_media_id

    def __call__(self, media: TgMedia) -> None:
        if self.expected_media_id and media.media_id != self.expected_media_id:
            raise PermanentError("the message's media was replaced (edited) after it was stored: the stored "
                                 f"file {self.expected_media_id} is no longer on Telegram", code="media_replaced")
        mime = base_mime(media.mime_type)
        if self.allowed is not None and mime not in self.allowed:
            raise PermanentError(f"media type {mime!r} is not allowed", code="media_type_not_allowed")
        if media.size_bytes is not None and media.size_bytes > self.max_bytes:
            raise PermanentError(f"media is {media.size_bytes} bytes, more than the limit of {self.max_bytes}",
                                 code="media_too_large")


def download_message_media(
    gateway: TelegramGateway,
    peer: PeerRef,
    message_id: int,
    dest_dir: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allowed_mime: Iterable[str] | None = DEFAULT_ALLOWED_MIME,
    expected_media_id: str | None = None,
) -> StoredMedia:
    """Download the media of one message into ``dest_dir`` (``<sha256[:2]>/<sha256><ext>``).

    PermanentError (``media_too_large``, ``media_type_not_allowed``, ``media_replaced``, or the port's
    MediaUnavailable / UnknownPeer) when it will never succeed; FloodWait (a RateLimited) and other
    RetryableErrors when a later attempt may. Nothing is left behind on failure.
    """
    check = MediaLimits(max_bytes=max_bytes, allowed_mime=allowed_mime, expected_media_id=expected_media_id)
    with MediaSink(dest_dir, max_bytes=max_bytes) as sink:
        media = gateway.download_media(peer, message_id, sink, check=check)
        return sink.finish(base_mime(media.mime_type))
