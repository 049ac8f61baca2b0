"""The gateway port implemented with Telethon — the only module that uses Telethon's client.

Telethon is asyncio-based; the port is blocking. Each :class:`TelethonGateway` owns a private
event loop and runs every call to completion on it, so it can be used from plain functions,
Prefect tasks and Streamlit reruns alike (one gateway per thread at a time).

Telethon's own FloodWait sleeping is turned off (``flood_sleep_threshold=0``): every FloodWait
comes out as :class:`~connectors.telegram.gateway.FloodWait` and the caller decides (the sync
sleeps through short ones and reports long ones as ``RateLimited``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from telethon import TelegramClient, errors, events, functions
from telethon.errors.rpcerrorlist import rpc_errors_dict
from telethon.sessions import StringSession
from telethon.tl import types

from connectors.base import AlreadySent, ConnectorError, PermanentError, RetryableError, UnknownOutcomeError
from connectors.telegram import gateway as port
from connectors.telegram.gateway import (
    DialogInfo,
    FloodWait,
    LoginStep,
    MediaUnavailable,
    PeerRef,
    TgMedia,
    TgMessage,
    TgUser,
    UnknownPeer,
)
from connectors.telegram.mapping import (
    input_peer,
    largest_photo_size,
    peer_ref,
    tg_dialog,
    tg_event,
    tg_media,
    tg_message,
    tg_user,
)

T = TypeVar("T")


# Telethon's error classes -> Telegram's error names (``FileReferenceExpiredError`` -> FILE_REFERENCE_EXPIRED);
# an instance's ``message`` is only its HTTP-like class (BAD_REQUEST) unless Telethon did not know the error.
_RPC_ERROR_NAMES: dict[type, str] = {cls: name for name, cls in rpc_errors_dict.items()}


def translate_error(exc: BaseException) -> ConnectorError:
    """Telethon/RPC errors -> the port's errors (Telegram's error name kept as ``code``)."""
    if isinstance(exc, ConnectorError):
        return exc
    name = _RPC_ERROR_NAMES.get(type(exc)) or getattr(exc, "message", None) or type(exc).__name__
    if isinstance(exc, errors.FloodWaitError | errors.FloodPremiumWaitError | errors.SlowModeWaitError):
        return FloodWait(int(exc.seconds), request=type(getattr(exc, "request", None)).__name__)
    if isinstance(exc, errors.PhoneNumberInvalidError | errors.PhoneNumberBannedError
                  | errors.PhoneNumberUnoccupiedError | errors.PhoneNumberFloodError):
        return port.InvalidPhone(str(exc), code=name)
    if isinstance(exc, errors.PhoneCodeInvalidError | errors.PhoneCodeEmptyError):
        return port.InvalidCode(str(exc), code=name)
    if isinstance(exc, errors.PhoneCodeExpiredError):
        return port.CodeExpired(str(exc), code=name)
    if isinstance(exc, errors.PasswordHashInvalidError):
        return port.InvalidPassword(str(exc), code=name)
    if isinstance(exc, errors.SessionPasswordNeededError):
        return port.LoginFailed("the account has two-step verification: enter its password", code=name)
    if isinstance(exc, errors.UnauthorizedError):
        return port.NotAuthorized(f"the Telegram session is no longer authorized ({name}): connect the account again",
                             code=name, status=401)
    if isinstance(exc, errors.PeerIdInvalidError | errors.ChannelInvalidError | errors.ChannelPrivateError
                  | errors.ChatIdInvalidError | errors.UserIdInvalidError):
        return UnknownPeer(str(exc), code=name)
    if isinstance(exc, errors.RandomIdDuplicateError):
        return AlreadySent("Telegram already has a message with this random_id: an earlier attempt was sent",
                           code=name)
    if isinstance(exc, errors.ServerError | errors.TimedOutError | errors.RpcCallFailError):
        return RetryableError(str(exc), code=name)
    if isinstance(exc, errors.FileReferenceExpiredError | errors.FilerefUpgradeNeededError):
        # the message is fetched again before every download, so the next attempt has a fresh reference
        return RetryableError(str(exc), code=name)
    if isinstance(exc, errors.RPCError):
        return PermanentError(str(exc), code=name, status=getattr(exc, "code", None))
    if isinstance(exc, ConnectionError | OSError | asyncio.TimeoutError):
        return RetryableError(f"cannot reach Telegram: {exc.__class__.__name__}: {exc}", code="NETWORK")
    return PermanentError(f"{exc.__class__.__name__}: {exc}", code="UNEXPECTED")


class TelethonGateway:
    """The port over one ``TelegramClient`` (usually built by :meth:`from_credentials`)."""

    def __init__(self, client: TelegramClient) -> None:
        self.client = client
        client.flood_sleep_threshold = 0
        self._loop = asyncio.new_event_loop()
        self._lock = threading.RLock()

    @classmethod
    def from_credentials(cls, api_id: int, api_hash: str, session: str = "", *,
                         receive_updates: bool = True) -> TelethonGateway:
        client = TelegramClient(StringSession(session or None), api_id, api_hash,
                                receive_updates=receive_updates, flood_sleep_threshold=0)
        return cls(client)

    # --- plumbing ------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            try:
                return self._loop.run_until_complete(self._connected(coro))
            except ConnectorError:
                raise
            except Exception as exc:
                raise translate_error(exc) from exc

    async def _connected(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            if not self.client.is_connected():
                await self.client.connect()
        except BaseException:
            coro.close()
            raise
        return await coro

    def close(self) -> None:
        async def _disconnect() -> None:
            await self.client.disconnect()

        with self._lock:
            if self._loop.is_closed():
                return
            try:
                if self.client.is_connected():
                    self._loop.run_until_complete(_disconnect())
            finally:
                self._loop.close()

    # --- login ---------------------------------------------------------------------------------

    def session_string(self) -> str:
        return StringSession.save(self.client.session)

    def send_code(self, phone: str) -> LoginStep:
        async def go() -> LoginStep:
            sent = await self.client.send_code_request(phone)
            return LoginStep("code", phone_code_hash=sent.phone_code_hash)

        return self._run(go())

    def sign_in_code(self, phone: str, code: str, phone_code_hash: str) -> LoginStep:
        async def go() -> LoginStep:
            try:
                user = await self.client.sign_in(phone=phone, code=code, phone_code_hash=phone_code_hash)
            except errors.SessionPasswordNeededError:
                hint = None
                try:
                    pwd = await self.client(functions.account.GetPasswordRequest())
                    hint = pwd.hint
                except errors.RPCError:
                    pass
                return LoginStep("password", password_hint=hint)
            return LoginStep("authorized", user=tg_user(user))

        return self._run(go())

    def sign_in_password(self, password: str) -> LoginStep:
        async def go() -> LoginStep:
            user = await self.client.sign_in(password=password)
            return LoginStep("authorized", user=tg_user(user))

        return self._run(go())

    def me(self) -> TgUser | None:
        async def go() -> TgUser | None:
            return tg_user(await self.client.get_me())

        return self._run(go())

    # --- data ----------------------------------------------------------------------------------

    def iter_dialogs(self) -> list[DialogInfo]:
        async def go() -> list[DialogInfo]:
            out: list[DialogInfo] = []
            async for dialog in self.client.iter_dialogs():
                entity = dialog.entity
                out.append(tg_dialog(dialog.dialog, {dialog.id: entity} if entity is not None else {}))
            return out

        return self._run(go())

    def iter_history(self, peer: PeerRef, min_id: int, limit: int) -> list[TgMessage]:
        async def go() -> list[TgMessage]:
            out: list[TgMessage] = []
            async for msg in self.client.iter_messages(input_peer(peer), limit=limit, min_id=min_id,
                                                       reverse=True):
                mapped = tg_message(msg, access_hash=peer.access_hash)
                if mapped is not None:
                    out.append(mapped)
            return out

        return self._run(go())

    def resolve_peer(self, marked_id: int) -> PeerRef:
        async def go() -> PeerRef:
            try:
                return peer_ref(await self.client.get_input_entity(marked_id))
            except (ValueError, TypeError):
                pass
            await self.client.get_dialogs()  # fills the session's entity cache with access hashes
            try:
                return peer_ref(await self.client.get_input_entity(marked_id))
            except (ValueError, TypeError) as exc:
                raise UnknownPeer(f"chat {marked_id} is not among this account's dialogs",
                                  code="PEER_ID_INVALID") from exc

        return self._run(go())

    def send_text(self, peer: PeerRef, text: str, reply_to: int | None = None,
                  random_id: int | None = None) -> TgMessage:
        async def go() -> TgMessage:
            entity = input_peer(peer)
            request = functions.messages.SendMessageRequest(
                peer=entity, message=text, no_webpage=True, random_id=random_id,
                reply_to=None if reply_to is None else types.InputReplyToMessage(reply_to))
            try:
                result = await self.client(request)
            except (TimeoutError, ConnectionError, OSError) as exc:  # the request was written
                raise UnknownOutcomeError(f"Telegram did not answer the send ({exc.__class__.__name__}): it may "
                                          "have been sent", code="UNKNOWN_OUTCOME",
                                          retry_is_safe=random_id is not None) from exc
            if isinstance(result, types.UpdateShortSentMessage):
                sent = types.Message(id=result.id, peer_id=await self.client._get_peer(entity), message=text,
                                     date=result.date, out=result.out, media=result.media,
                                     entities=result.entities, reply_to=request.reply_to)
                sent._finish_init(self.client, {}, entity)
            else:
                sent = self.client._get_response_message(request, result, entity)
            return self._sent(sent, peer)

        return self._run(go())

    def send_file(self, peer: PeerRef, path: str, caption: str | None = None) -> TgMessage:
        if not Path(path).is_file():
            raise PermanentError(f"file to send does not exist: {path}", code="FILE_NOT_FOUND")

        async def go() -> TgMessage:
            sent = await self.client.send_file(input_peer(peer), path, caption=caption or "", parse_mode=None)
            return self._sent(sent, peer)

        return self._run(go())

    def mark_read(self, peer: PeerRef, max_id: int) -> None:
        async def go() -> None:
            await self.client.send_read_acknowledge(input_peer(peer), max_id=max_id)

        self._run(go())

    def set_typing(self, peer: PeerRef) -> None:
        from telethon import functions, types

        async def go() -> None:
            await self.client(functions.messages.SetTypingRequest(peer=input_peer(peer),
                                                                  action=types.SendMessageTypingAction()))

        self._run(go())

    def download_media(self, peer: PeerRef, message_id: int, out: port.MediaWriter, *,
                       check: port.MediaCheck | None = None) -> TgMedia:
        async def go() -> TgMedia:
            # get_messages checks that the id belongs to this chat (ids of private chats and groups
            # are per account); a deleted message comes back as None
            msg = await self.client.get_messages(input_peer(peer), ids=message_id)
            if not isinstance(msg, types.Message):
                raise MediaUnavailable(f"message {message_id} no longer exists in chat {peer.marked_id}",
                                       code="MESSAGE_NOT_FOUND")
            media = tg_media(msg.media)
            if media is None or media.kind not in port.DOWNLOADABLE_KINDS:
                raise MediaUnavailable(f"message {message_id} of chat {peer.marked_id} has no downloadable "
                                       f"media ({media.kind if media else 'none'})", code="NO_MEDIA")
            if media.media_id is None or media.data.get("expired"):
                raise MediaUnavailable(f"the media of message {message_id} of chat {peer.marked_id} expired",
                                       code="MEDIA_EXPIRED")
            if check is not None:
                check(media)
            thumb: str | None = None
            if isinstance(msg.media, types.MessageMediaPhoto) and isinstance(msg.media.photo, types.Photo):
                largest = largest_photo_size(msg.media.photo)
                if largest is None:
                    raise MediaUnavailable(f"the photo of message {message_id} has no downloadable size",
                                           code="MEDIA_EXPIRED")
                thumb = largest[0]  # the largest image, never the photo's animated video size
            result = await self.client.download_media(msg, file=out, thumb=thumb)
            if result is None:
                raise MediaUnavailable(f"Telegram returned nothing for the media of message {message_id}",
                                       code="MEDIA_EXPIRED")
            return media

        return self._run(go())

    @staticmethod
    def _sent(sent: Any, peer: PeerRef) -> TgMessage:
        mapped = tg_message(sent, access_hash=peer.access_hash)
        if mapped is None:
            raise PermanentError("Telegram did not return the sent message", code="NO_MESSAGE")
        return mapped

    def listen(self, handler: port.EventHandler, stop: threading.Event) -> None:
        async def on_event(event: Any) -> None:
            mapped = tg_event(event)
            if mapped is not None:
                handler(mapped)

        builders = [events.NewMessage(), events.MessageEdited(), events.MessageDeleted(),
                    events.MessageRead(inbox=False)]

        async def go() -> None:
            for builder in builders:
                self.client.add_event_handler(on_event, builder)
            try:
                await self.client.catch_up()
                while not stop.is_set() and self.client.is_connected():
                    await asyncio.sleep(0.25)
            finally:
                self.client.remove_event_handler(on_event)

        self._run(go())
