"""The Telegram gateway port: exactly what Switchboard needs from a Telegram user account.

Only :mod:`connectors.telegram.telethon_gateway` implements it with Telethon;
:mod:`connectors.telegram.fake` implements it in memory for tests and the demo. Every value that
crosses the port is a frozen dataclass of ours, never a Telethon object.

Peers: Telegram identifies a chat by its type and raw id; the "marked" id folds both into one
integer (user ``id``, basic group ``-id``, channel/megagroup ``-100…id``). Switchboard keys a chat
by its marked id, and a message by ``f"{marked_chat_id}:{message_id}"`` (message ids are per
account for private chats and basic groups, per channel for channels and megagroups).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from connectors.base import AuthenticationError, ConnectorError, PermanentError, RateLimited

PeerType = Literal["user", "chat", "channel"]
_CHANNEL_MARK = 1_000_000_000_000


@dataclass(frozen=True, slots=True)
class PeerRef:
    """A chat as Telegram addresses it: type, raw id and (users, channels) the access hash."""

    peer_type: PeerType
    peer_id: int
    access_hash: int | None = None

    @property
    def marked_id(self) -> int:
        if self.peer_type == "user":
            return self.peer_id
        if self.peer_type == "chat":
            return -self.peer_id
        return -(_CHANNEL_MARK + self.peer_id)

    @staticmethod
    def from_marked(marked_id: int, access_hash: int | None = None) -> PeerRef:
        if marked_id > 0:
            return PeerRef("user", marked_id, access_hash)
        if marked_id <= -_CHANNEL_MARK:
            return PeerRef("channel", -marked_id - _CHANNEL_MARK, access_hash)
        return PeerRef("chat", -marked_id, access_hash)

    def to_dict(self) -> dict[str, Any]:
        return {"peer_type": self.peer_type, "peer_id": self.peer_id, "access_hash": self.access_hash}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> PeerRef:
        peer_type = data.get("peer_type")
        if peer_type not in ("user", "chat", "channel"):
            raise ValueError(f"unknown Telegram peer type {peer_type!r}")
        access_hash = data.get("access_hash")
        return PeerRef(peer_type, int(data["peer_id"]), int(access_hash) if access_hash is not None else None)


@dataclass(frozen=True, slots=True)
class TgUser:
    id: int
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    phone: str | None = None
    is_bot: bool = False
    access_hash: int | None = None

    @property
    def display_name(self) -> str | None:
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.username or None


@dataclass(frozen=True, slots=True)
class TgMedia:
    kind: str  # image | video | audio | voice | document | sticker | location | contacts | poll | other
    mime_type: str | None = None
    file_name: str | None = None
    size_bytes: int | None = None
    media_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TgMessage:
    """One message of one chat. ``out`` is True when the account itself sent it."""

    peer: PeerRef
    id: int
    date: datetime
    text: str | None
    out: bool = False
    sender_id: int | None = None
    sender: TgUser | None = None
    chat_title: str | None = None
    chat_user: TgUser | None = None  # the other party of a private chat, when known
    reply_to_msg_id: int | None = None
    media: TgMedia | None = None
    edit_date: datetime | None = None
    service: bool = False  # join/leave/pin... (not a chat message)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.peer.marked_id}:{self.id}"


@dataclass(frozen=True, slots=True)
class DialogInfo:
    peer: PeerRef
    title: str | None
    top_message_id: int
    unread_count: int = 0
    user: TgUser | None = None  # for private chats


@dataclass(frozen=True, slots=True)
class LoginStep:
    """Where a login stands after one call: a code was sent, a 2FA password is needed, or done."""

    step: Literal["code", "password", "authorized"]
    phone_code_hash: str | None = None
    password_hint: str | None = None
    user: TgUser | None = None


# --- live events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TgNewMessage:
    message: TgMessage


@dataclass(frozen=True, slots=True)
class TgMessageEdited:
    message: TgMessage


@dataclass(frozen=True, slots=True)
class TgMessagesDeleted:
    """``peer`` is None for private chats and basic groups: Telegram does not say which chat."""

    message_ids: tuple[int, ...]
    peer: PeerRef | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class TgOutboxRead:
    """The other side read every message we sent in ``peer`` up to ``max_id``."""

    peer: PeerRef
    max_id: int
    occurred_at: datetime


TgEvent = TgNewMessage | TgMessageEdited | TgMessagesDeleted | TgOutboxRead
EventHandler = Callable[[TgEvent], None]


# --- errors ------------------------------------------------------------------------------------


class FloodWait(RateLimited):
    """Telegram asked us to wait ``seconds`` before repeating this kind of request."""

    def __init__(self, seconds: int, *, request: str | None = None) -> None:
        what = f" before {request}" if request else ""
        super().__init__(f"Telegram asks to wait {seconds} s{what} (FloodWait)",
                         retry_after=float(seconds), code="FLOOD_WAIT")
        self.seconds = seconds


class LoginFailed(ConnectorError):
    """A login step was refused; ``code`` is Telegram's error name, ``message`` says what to do."""


class InvalidPhone(LoginFailed):
    pass


class InvalidCode(LoginFailed):
    pass


class CodeExpired(LoginFailed):
    pass


class InvalidPassword(LoginFailed):
    pass


class NotAuthorized(AuthenticationError):
    """The session is not (or no longer) logged in."""


class UnknownPeer(PermanentError):
    """The chat is not known to this account (no access hash stored)."""


class MediaUnavailable(PermanentError):
    """A message's media cannot be downloaded: the message is gone (``MESSAGE_NOT_FOUND``), it has no
    downloadable media (``NO_MEDIA``: text, location, poll...), or the media expired (``MEDIA_EXPIRED``:
    self-destructing photos and videos)."""


# Media kinds whose bytes live on Telegram's file servers (photos and documents).
DOWNLOADABLE_KINDS = frozenset({"image", "video", "audio", "voice", "document", "sticker"})


class MediaWriter(Protocol):
    """Where a download goes: any binary file-like object (``io.BytesIO``, an open file,
    :class:`connectors.media.MediaSink`). ``write`` may raise to abort the download."""

    def write(self, data: bytes, /) -> int: ...

    def tell(self) -> int: ...


MediaCheck = Callable[[TgMedia], None]


def random_id_for(idempotency_key: str) -> int:
    """The ``random_id`` of a send, derived from its idempotency key (the same key, the same id: a retry
    of a send whose outcome is unknown is deduplicated by Telegram)."""
    digest = hashlib.sha256(idempotency_key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True) or 1


# --- the port ----------------------------------------------------------------------------------


@runtime_checkable
class TelegramGateway(Protocol):
    """What Switchboard needs from one Telegram user account. Calls block; errors are ours."""

    def send_code(self, phone: str) -> LoginStep: ...

    def sign_in_code(self, phone: str, code: str, phone_code_hash: str) -> LoginStep: ...

    def sign_in_password(self, password: str) -> LoginStep: ...

    def me(self) -> TgUser | None:
        """The logged-in user, or None when the session is not authorized."""
        ...

    def session_string(self) -> str: ...

    def iter_dialogs(self) -> list[DialogInfo]: ...

    def iter_history(self, peer: PeerRef, min_id: int, limit: int) -> list[TgMessage]:
        """Up to ``limit`` messages with id > ``min_id``, oldest first."""
        ...

    def resolve_peer(self, marked_id: int) -> PeerRef:
        """The peer (with access hash) of a chat this account knows; raise UnknownPeer otherwise."""
        ...

    def send_text(self, peer: PeerRef, text: str, reply_to: int | None = None,
                  random_id: int | None = None) -> TgMessage:
        """Send a text. ``random_id`` (a signed 64-bit integer) is Telegram's deduplication key: a second
        send with the same one raises :class:`~connectors.base.AlreadySent` (``RANDOM_ID_DUPLICATE``)
        instead of sending again. A connection lost after the request was written raises
        :class:`~connectors.base.UnknownOutcomeError` (safe to retry when ``random_id`` was given)."""
        ...

    def send_file(self, peer: PeerRef, path: str, caption: str | None = None) -> TgMessage: ...

    def mark_read(self, peer: PeerRef, max_id: int) -> None:
        """Acknowledge the chat's messages up to ``max_id`` as read (the customer sees them read)."""
        ...

    def set_typing(self, peer: PeerRef) -> None:
        """Show "typing…" to the chat (Telegram shows it for about 5 seconds)."""
        ...

    def download_media(self, peer: PeerRef, message_id: int, out: MediaWriter, *,
                       check: MediaCheck | None = None) -> TgMedia:
        """Fetch message ``message_id`` of ``peer`` and write its media (a photo's largest size, or the
        whole document) into ``out``; return the media's description (kind, mime type, size, media id).

        ``check`` sees that description before any byte is fetched; whatever it raises aborts the
        download (size and type limits). Raises MediaUnavailable when the message is gone, has no
        downloadable media or the media expired; UnknownPeer for a chat the account cannot see;
        FloodWait like every other call.
        """
        ...

    def listen(self, handler: EventHandler, stop: threading.Event) -> None:
        """Deliver live events to ``handler`` until ``stop`` is set or the connection ends."""
        ...

    def close(self) -> None: ...
