"""An in-memory Telegram that behaves like the real one where Switchboard depends on it.

:class:`FakeTelegramWorld` holds accounts (with optional 2FA passwords), their chats and messages,
login codes with expiry, auth keys (sessions) and queued live events. :class:`FakeTelegramGateway`
implements the gateway port on a world for one session string, so a new gateway built from a
persisted session string continues where the last one stopped — exactly what the login page needs.

Faithful details: a login code is bound to the auth key that requested it (a new session makes it
expire, as on Telegram); codes expire after ``code_ttl``; message ids are per account for private
chats and basic groups and per channel for channels/megagroups; a wrong access hash is refused;
FloodWaits can be injected per method. Media the world created (:meth:`FakeTelegramWorld.receive_media`,
files sent through the gateway) keeps its bytes and is downloaded by message like on Telegram; a
message without it, a deleted message or expired media (:meth:`FakeTelegramWorld.expire_media`)
gives :class:`~connectors.telegram.gateway.MediaUnavailable`.

Test/demo only: ``SWITCHBOARD_TELEGRAM_FAKE=1`` makes ``get_telegram_gateway`` use the process-wide
:func:`default_fake_world`.
"""

from __future__ import annotations

import mimetypes
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.base import AlreadySent, PermanentError, UnknownOutcomeError
from connectors.telegram import gateway as port
from connectors.telegram.gateway import (
    DOWNLOADABLE_KINDS,
    CodeExpired,
    DialogInfo,
    FloodWait,
    InvalidCode,
    InvalidPassword,
    InvalidPhone,
    LoginFailed,
    LoginStep,
    MediaUnavailable,
    NotAuthorized,
    PeerRef,
    TgMedia,
    TgMessage,
    TgUser,
    UnknownPeer,
)

Clock = Callable[[], datetime]
_CHUNK = 128 * 1024  # upload.getFile part size Telethon asks for


def _utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_phone(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return f"+{digits}" if digits else ""


@dataclass
class FakeChat:
    peer: PeerRef
    title: str | None
    user: TgUser | None = None
    messages: list[TgMessage] = field(default_factory=list)
    next_channel_id: int = 1
    unread_count: int = 0

    @property
    def top_message_id(self) -> int:
        return self.messages[-1].id if self.messages else 0


@dataclass
class FakeAccount:
    user: TgUser
    phone: str
    login_code: str = "12345"
    password: str | None = None
    password_hint: str | None = None
    chats: dict[int, FakeChat] = field(default_factory=dict)
    next_message_id: int = 1  # shared by private chats and basic groups of this account
    events: deque[port.TgEvent] = field(default_factory=deque)


@dataclass
class _PendingCode:
    code: str
    phone_code_hash: str
    expires_at: datetime


class FakeTelegramWorld:
    def __init__(self, *, now: Clock = _utcnow, code_ttl: timedelta = timedelta(minutes=5)) -> None:
        self.now = now
        self.code_ttl = code_ttl
        self.accounts: dict[str, FakeAccount] = {}
        self.sessions: dict[str, str | None] = {}  # auth key -> phone once authorized
        self.pending_codes: dict[tuple[str, str], _PendingCode] = {}
        self.pending_password: dict[str, str] = {}
        self.flood: dict[str, deque[int]] = {}
        self.failures: dict[str, list[tuple[int, BaseException]]] = {}
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.media_bytes: dict[str, bytes] = {}  # media id -> the file on Telegram's file servers
        self.read_acks: list[tuple[str, int, int]] = []  # (account phone, chat, max id) acknowledged read
        self.typing: list[tuple[str, int]] = []  # (account phone, chat) shown "typing…"
        self.random_ids: dict[tuple[str, int], TgMessage] = {}  # (account phone, random_id) -> the message sent
        self.lost_answers: dict[str, int] = {}  # method -> how many more sends go out but lose their answer
        self._next_media_id = 5_000_000_000
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._next_user_id = 700_000
        self._next_group_id = 4_000
        self._next_channel_id = 1_900_000_000

    # --- set-up --------------------------------------------------------------------------------

    def add_account(self, phone: str, first_name: str = "Support", *, last_name: str | None = None,
                    username: str | None = None, password: str | None = None,
                    password_hint: str | None = None, login_code: str = "12345") -> FakeAccount:
        phone = normalize_phone(phone)
        with self.lock:
            self._next_user_id += 1
            user = TgUser(self._next_user_id, first_name, last_name, username, phone.lstrip("+"),
                          access_hash=secrets.randbits(62))
            account = FakeAccount(user, phone, login_code, password, password_hint)
            self.accounts[phone] = account
            return account

    def add_private_chat(self, phone: str, first_name: str, *, last_name: str | None = None,
                         username: str | None = None, user_phone: str | None = None,
                         is_bot: bool = False) -> PeerRef:
        with self.lock:
            self._next_user_id += 1
            user = TgUser(self._next_user_id, first_name, last_name, username, user_phone, is_bot,
                          access_hash=secrets.randbits(62))
            peer = PeerRef("user", user.id, user.access_hash)
            self._account(phone).chats[peer.marked_id] = FakeChat(peer, user.display_name, user)
            return peer

    def add_group(self, phone: str, title: str) -> PeerRef:
        with self.lock:
            self._next_group_id += 1
            peer = PeerRef("chat", self._next_group_id)
            self._account(phone).chats[peer.marked_id] = FakeChat(peer, title)
            return peer

    def add_channel(self, phone: str, title: str) -> PeerRef:
        with self.lock:
            self._next_channel_id += 1
            peer = PeerRef("channel", self._next_channel_id, secrets.randbits(62))
            self._account(phone).chats[peer.marked_id] = FakeChat(peer, title)
            return peer

    def revoke_sessions(self, phone: str) -> None:
        """The user ended every session of the account (Settings → Devices): its auth keys stop working."""
        with self.lock:
            for key, owner in list(self.sessions.items()):
                if owner == normalize_phone(phone):
                    self.sessions[key] = None

    def inject_flood_wait(self, method: str, seconds: int, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` (e.g. "iter_history") raise FloodWait(seconds)."""
        with self.lock:
            self.flood.setdefault(method, deque()).extend([seconds] * times)

    def inject_error(self, method: str, error: BaseException, *, skip: int = 0) -> None:
        """After ``skip`` more successful calls, the next call of ``method`` raises ``error``
        (a dropped connection, a server error...)."""
        with self.lock:
            self.failures.setdefault(method, []).append((skip, error))

    def inject_lost_answer(self, method: str = "send_text", times: int = 1) -> None:
        """The next ``times`` calls of ``method`` go through (the message is sent) but the answer is lost
        on the way back: the caller gets UnknownOutcomeError, as after a connection reset."""
        with self.lock:
            self.lost_answers[method] = self.lost_answers.get(method, 0) + times

    # --- platform-side activity ----------------------------------------------------------------

    def _append(self, account: FakeAccount, chat: FakeChat, make: Callable[[int], TgMessage]) -> TgMessage:
        if chat.peer.peer_type == "channel":
            mid = chat.next_channel_id
            chat.next_channel_id += 1
        else:
            mid = account.next_message_id
            account.next_message_id += 1
        msg = make(mid)
        chat.messages.append(msg)
        return msg

    def receive(self, phone: str, peer: PeerRef, text: str | None, *, media: TgMedia | None = None,
                date: datetime | None = None, sender: TgUser | None = None,
                reply_to: int | None = None, notify: bool = True) -> TgMessage:
        """A customer writes to the account (queued as a live event unless ``notify=False``)."""
        with self.lock:
            account = self._account(phone)
            chat = self._chat(account, peer.marked_id)
            who = sender or chat.user
            msg = self._append(account, chat, lambda mid: TgMessage(
                peer=chat.peer, id=mid, date=date or self.now(), text=text, out=False,
                sender_id=who.id if who else None, sender=who, chat_title=chat.title, chat_user=chat.user,
                reply_to_msg_id=reply_to, media=media, raw={"fake": True, "id": mid},
            ))
            chat.unread_count += 1
            if notify:
                self._emit(account, port.TgNewMessage(msg))
            return msg

    def new_media(self, kind: str, content: bytes, *, mime_type: str | None = None,
                  file_name: str | None = None) -> TgMedia:
        """Upload ``content`` to the fake file servers; the returned media can be attached to messages.
        A photo (``kind="image"``) is JPEG unless ``mime_type`` says otherwise (an image sent as a file)."""
        with self.lock:
            self._next_media_id += 1
            media_id = str(self._next_media_id)
            self.media_bytes[media_id] = bytes(content)
            mime = mime_type or ("image/jpeg" if kind == "image" else "application/octet-stream")
            return TgMedia(kind, mime, file_name, len(content), media_id)

    def receive_media(self, phone: str, peer: PeerRef, kind: str, content: bytes, *, mime_type: str | None = None,
                      file_name: str | None = None, caption: str | None = None, notify: bool = True) -> TgMessage:
        """A customer sends a photo (``kind="image"``) or a file (document, video, audio, voice, sticker)."""
        media = self.new_media(kind, content, mime_type=mime_type, file_name=file_name)
        return self.receive(phone, peer, caption, media=media, notify=notify)

    def expire_media(self, phone: str, peer: PeerRef, message_id: int) -> None:
        """The message's media is gone (a self-destructing photo that timed out): Telegram then shows
        the message with an empty photo/document, as :func:`~connectors.telegram.mapping.tg_media` maps it."""
        with self.lock:
            account = self._account(phone)
            chat = self._chat(account, peer.marked_id)
            for i, msg in enumerate(chat.messages):
                if msg.id == message_id and msg.media is not None:
                    if msg.media.media_id is not None:
                        self.media_bytes.pop(msg.media.media_id, None)
                    kind = "image" if msg.media.kind == "image" else "document"
                    chat.messages[i] = replace(msg, media=TgMedia(kind, data={"expired": True}))
                    return
            raise KeyError(message_id)

    def send_native(self, phone: str, peer: PeerRef, text: str, *, date: datetime | None = None) -> TgMessage:
        """The account owner writes from the Telegram app (an outgoing message Switchboard did not send)."""
        with self.lock:
            account = self._account(phone)
            return self._send(account, self._chat(account, peer.marked_id), text, None, None, date, True)

    def edit(self, phone: str, peer: PeerRef, message_id: int, text: str) -> TgMessage:
        with self.lock:
            account = self._account(phone)
            chat = self._chat(account, peer.marked_id)
            for i, msg in enumerate(chat.messages):
                if msg.id == message_id:
                    edited = replace(msg, text=text, edit_date=self.now())
                    chat.messages[i] = edited
                    self._emit(account, port.TgMessageEdited(edited))
                    return edited
            raise KeyError(message_id)

    def delete(self, phone: str, peer: PeerRef, message_ids: list[int]) -> None:
        """Delete messages; like Telegram, the event names the chat only for channels."""
        with self.lock:
            account = self._account(phone)
            chat = self._chat(account, peer.marked_id)
            chat.messages = [m for m in chat.messages if m.id not in message_ids]
            event_peer = PeerRef("channel", peer.peer_id) if peer.peer_type == "channel" else None
            self._emit(account, port.TgMessagesDeleted(tuple(message_ids), event_peer, self.now()))

    def read_outbox(self, phone: str, peer: PeerRef, max_id: int) -> None:
        """The customer read our messages up to ``max_id``."""
        with self.lock:
            account = self._account(phone)
            self._emit(account, port.TgOutboxRead(self._chat(account, peer.marked_id).peer, max_id, self.now()))

    def _emit(self, account: FakeAccount, event: port.TgEvent) -> None:
        account.events.append(event)
        self.changed.notify_all()

    # --- internals shared with the gateway -----------------------------------------------------

    def _account(self, phone: str) -> FakeAccount:
        account = self.accounts.get(normalize_phone(phone))
        if account is None:
            raise InvalidPhone("PHONE_NUMBER_INVALID: no Telegram account has this phone number",
                               code="PHONE_NUMBER_INVALID")
        return account

    def _chat(self, account: FakeAccount, marked_id: int) -> FakeChat:
        chat = account.chats.get(marked_id)
        if chat is None:
            raise UnknownPeer(f"chat {marked_id} is not known to this account", code="PEER_ID_INVALID")
        return chat

    def _send(self, account: FakeAccount, chat: FakeChat, text: str | None, media: TgMedia | None,
              reply_to: int | None, date: datetime | None, notify: bool) -> TgMessage:
        msg = self._append(account, chat, lambda mid: TgMessage(
            peer=chat.peer, id=mid, date=date or self.now(), text=text, out=True,
            sender_id=account.user.id, sender=account.user, chat_title=chat.title, chat_user=chat.user,
            reply_to_msg_id=reply_to, media=media, raw={"fake": True, "id": mid},
        ))
        chat.unread_count = 0
        if notify:
            self._emit(account, port.TgNewMessage(msg))
        return msg


class FakeTelegramGateway:
    """The gateway port over a :class:`FakeTelegramWorld`, for one session string."""

    def __init__(self, world: FakeTelegramWorld, session: str = "") -> None:
        self.world = world
        self._key = session.removeprefix("fake:") if session.startswith("fake:") else ""
        self.closed = False

    # --- plumbing ------------------------------------------------------------------------------

    def _call(self, method: str, *args: object) -> None:
        self.world.calls.append((method, args))
        pending = self.world.failures.get(method)
        if pending:
            skip, error = pending[0]
            if skip <= 0:
                pending.pop(0)
                raise error
            pending[0] = (skip - 1, error)
        queue = self.world.flood.get(method)
        if queue:
            raise FloodWait(queue.popleft(), request=method)

    def _authorized(self) -> FakeAccount:
        phone = self.world.sessions.get(self._key) if self._key else None
        if phone is None:
            raise NotAuthorized("the Telegram session is not logged in; connect the account again",
                                code="AUTH_KEY_UNREGISTERED")
        return self.world.accounts[phone]

    def _chat_for(self, account: FakeAccount, peer: PeerRef) -> FakeChat:
        chat = self.world._chat(account, peer.marked_id)
        if chat.peer.access_hash is not None and peer.access_hash != chat.peer.access_hash:
            raise UnknownPeer(f"wrong access hash for chat {peer.marked_id}", code="PEER_ID_INVALID")
        return chat

    # --- login ---------------------------------------------------------------------------------

    def session_string(self) -> str:
        return f"fake:{self._key}" if self._key else ""

    def send_code(self, phone: str) -> LoginStep:
        with self.world.lock:
            self._call("send_code", phone)
            account = self.world._account(phone)
            if not self._key:  # a fresh session gets a new auth key (which is why it must be kept)
                self._key = secrets.token_hex(16)
                self.world.sessions[self._key] = None
            code_hash = secrets.token_hex(8)
            self.world.pending_codes[(self._key, account.phone)] = _PendingCode(
                account.login_code, code_hash, self.world.now() + self.world.code_ttl)
            return LoginStep("code", phone_code_hash=code_hash)

    def sign_in_code(self, phone: str, code: str, phone_code_hash: str) -> LoginStep:
        with self.world.lock:
            self._call("sign_in_code", phone)
            account = self.world._account(phone)
            pending = self.world.pending_codes.get((self._key, account.phone)) if self._key else None
            if pending is None or pending.phone_code_hash != phone_code_hash:
                raise CodeExpired("PHONE_CODE_EXPIRED", code="PHONE_CODE_EXPIRED")
            if self.world.now() > pending.expires_at:
                del self.world.pending_codes[(self._key, account.phone)]
                raise CodeExpired("PHONE_CODE_EXPIRED", code="PHONE_CODE_EXPIRED")
            if code.strip() != pending.code:
                raise InvalidCode("PHONE_CODE_INVALID", code="PHONE_CODE_INVALID")
            del self.world.pending_codes[(self._key, account.phone)]
            if account.password is not None:
                self.world.pending_password[self._key] = account.phone
                return LoginStep("password", password_hint=account.password_hint)
            self.world.sessions[self._key] = account.phone
            return LoginStep("authorized", user=account.user)

    def sign_in_password(self, password: str) -> LoginStep:
        with self.world.lock:
            self._call("sign_in_password")
            phone = self.world.pending_password.get(self._key) if self._key else None
            if phone is None:
                raise LoginFailed("no password was requested for this session; start again",
                                  code="PASSWORD_NOT_REQUESTED")
            account = self.world.accounts[phone]
            if password != account.password:
                raise InvalidPassword("PASSWORD_HASH_INVALID", code="PASSWORD_HASH_INVALID")
            del self.world.pending_password[self._key]
            self.world.sessions[self._key] = phone
            return LoginStep("authorized", user=account.user)

    def me(self) -> TgUser | None:
        with self.world.lock:
            self._call("me")
            phone = self.world.sessions.get(self._key) if self._key else None
            return self.world.accounts[phone].user if phone else None

    # --- data ----------------------------------------------------------------------------------

    def iter_dialogs(self) -> list[DialogInfo]:
        with self.world.lock:
            self._call("iter_dialogs")
            account = self._authorized()
            chats = sorted(account.chats.values(),
                           key=lambda c: c.messages[-1].date if c.messages else datetime.min.replace(tzinfo=UTC),
                           reverse=True)
            return [DialogInfo(c.peer, c.title, c.top_message_id, c.unread_count, c.user) for c in chats]

    def iter_history(self, peer: PeerRef, min_id: int, limit: int) -> list[TgMessage]:
        with self.world.lock:
            self._call("iter_history", peer.marked_id, min_id, limit)
            chat = self._chat_for(self._authorized(), peer)
            return [m for m in chat.messages if m.id > min_id][:limit]

    def resolve_peer(self, marked_id: int) -> PeerRef:
        with self.world.lock:
            self._call("resolve_peer", marked_id)
            return self.world._chat(self._authorized(), marked_id).peer

    def send_text(self, peer: PeerRef, text: str, reply_to: int | None = None,
                  random_id: int | None = None) -> TgMessage:
        with self.world.lock:
            self._call("send_text", peer.marked_id, text)
            account = self._authorized()
            chat = self._chat_for(account, peer)
            if random_id is not None and (account.phone, random_id) in self.world.random_ids:
                # like Telegram: a random_id already used is refused, nothing is sent again
                raise AlreadySent("RANDOM_ID_DUPLICATE: the random_id was already used", code="RANDOM_ID_DUPLICATE")
            msg = self.world._send(account, chat, text, None, reply_to, None, False)
            if random_id is not None:
                self.world.random_ids[(account.phone, random_id)] = msg
            if self.world.lost_answers.get("send_text", 0) > 0:
                self.world.lost_answers["send_text"] -= 1
                raise UnknownOutcomeError("connection reset after the send was written (fake)",
                                          code="UNKNOWN_OUTCOME", retry_is_safe=random_id is not None)
            return msg

    def send_file(self, peer: PeerRef, path: str, caption: str | None = None) -> TgMessage:
        with self.world.lock:
            self._call("send_file", peer.marked_id, path)
            account = self._authorized()
            file = Path(path)
            if not file.is_file():
                raise PermanentError(f"file to send does not exist: {path}", code="FILE_NOT_FOUND")
            mime = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            kind = "image" if mime.startswith("image/") else "video" if mime.startswith("video/") else "document"
            media = self.world.new_media(kind, file.read_bytes(), mime_type=mime, file_name=file.name)
            return self.world._send(account, self._chat_for(account, peer), caption, media, None, None, False)

    def mark_read(self, peer: PeerRef, max_id: int) -> None:
        with self.world.lock:
            self._call("mark_read", peer.marked_id, max_id)
            account = self._authorized()
            self._chat_for(account, peer)
            self.world.read_acks.append((account.phone, peer.marked_id, max_id))

    def set_typing(self, peer: PeerRef) -> None:
        with self.world.lock:
            self._call("set_typing", peer.marked_id)
            account = self._authorized()
            self._chat_for(account, peer)
            self.world.typing.append((account.phone, peer.marked_id))

    def download_media(self, peer: PeerRef, message_id: int, out: port.MediaWriter, *,
                       check: port.MediaCheck | None = None) -> TgMedia:
        with self.world.lock:
            self._call("download_media", peer.marked_id, message_id)
            account = self._authorized()
            # messages.getMessages takes bare ids (per account) for private chats and basic groups: only a
            # channel's messages are asked for with its access hash (channels.getMessages)
            chat = self._chat_for(account, peer) if peer.peer_type == "channel" else \
                self.world._chat(account, peer.marked_id)
            msg = next((m for m in chat.messages if m.id == message_id), None)
            if msg is None:
                raise MediaUnavailable(f"message {message_id} no longer exists in chat {peer.marked_id}",
                                       code="MESSAGE_NOT_FOUND")
            media = msg.media
            if media is None or media.kind not in DOWNLOADABLE_KINDS:
                raise MediaUnavailable(f"message {message_id} of chat {peer.marked_id} has no downloadable "
                                       f"media ({media.kind if media else 'none'})", code="NO_MEDIA")
            content = self.world.media_bytes.get(media.media_id or "")
            if content is None or media.data.get("expired"):
                raise MediaUnavailable(f"the media of message {message_id} of chat {peer.marked_id} expired",
                                       code="MEDIA_EXPIRED")
        if check is not None:
            check(media)
        for start in range(0, len(content), _CHUNK):  # in parts, as Telegram serves files
            out.write(content[start:start + _CHUNK])
        return media

    def listen(self, handler: port.EventHandler, stop: threading.Event) -> None:
        account = self._authorized()
        while not stop.is_set() and not self.closed:
            with self.world.changed:
                if not account.events:
                    self.world.changed.wait(0.05)
                    continue
                event = account.events.popleft()
            handler(event)

    def close(self) -> None:
        self.closed = True


_DEFAULT_WORLD: FakeTelegramWorld | None = None
_DEFAULT_LOCK = threading.Lock()

DEMO_PHONE = "+15550100001"
DEMO_2FA_PHONE = "+15550100002"
DEMO_CODE = "12345"
DEMO_PASSWORD = "correct horse"


def default_fake_world() -> FakeTelegramWorld:
    """The process-wide fake world used when ``SWITCHBOARD_TELEGRAM_FAKE=1`` (tests and demo only).

    Accounts: +15550100001 (code 12345) and +15550100002 (code 12345, 2FA password "correct horse"),
    each with a customer chat holding two messages.
    """
    global _DEFAULT_WORLD
    with _DEFAULT_LOCK:
        if _DEFAULT_WORLD is None:
            world = FakeTelegramWorld()
            for phone, password in ((DEMO_PHONE, None), (DEMO_2FA_PHONE, DEMO_PASSWORD)):
                world.add_account(phone, "Support", password=password,
                                  password_hint="a horse" if password else None, login_code=DEMO_CODE)
                peer = world.add_private_chat(phone, "Ada", last_name="Lovelace", username="ada")
                world.receive(phone, peer, "Hello! Is my order on its way?", notify=False)
                world.receive(phone, peer, "Order #1042", notify=False)
            _DEFAULT_WORLD = world
        return _DEFAULT_WORLD
