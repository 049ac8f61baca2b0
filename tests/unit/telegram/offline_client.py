"""A Telegram *platform* double for the Telethon adapter: a ``TelegramClient`` subclass whose
``__call__`` answers MTProto requests with real TL objects, so Telethon's own code (iter_messages
paging, sign_in, send_code_request, send_message response handling, get_messages by id,
download_media's upload.getFile parts and its file-reference refetch) runs unmodified, offline.

It fakes the platform, not our code: the adapter under test is the real ``TelethonGateway``.
The 2FA password check is real SRP (server side computed here), so a wrong password is refused
by the same maths Telegram uses.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from telethon import TelegramClient, errors, functions, utils
from telethon.crypto import AuthKey
from telethon.extensions import BinaryReader
from telethon.password import big_num_for_hash, check_prime_and_good, compute_hash, num_bytes_for_hash, xor
from telethon.sessions import StringSession
from telethon.tl import types

API_ID = 12345
API_HASH = "0123456789abcdef0123456789abcdef"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _good_prime() -> bytes:
    for const in check_prime_and_good.__code__.co_consts:
        if isinstance(const, tuple) and len(const) == 256:
            return bytes(const)
    raise RuntimeError("Telethon's known-good prime not found")


def _h(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


class OfflineTelegram:
    """Platform state: one account, its users/chats and their messages."""

    def __init__(self, *, phone: str = "+15550001111", code: str = "24680", password: str | None = None) -> None:
        self.phone = phone
        self.code = code
        self.password = password
        self.me = types.User(id=1001, is_self=True, access_hash=111, first_name="Shop", phone=phone[1:])
        self.users: dict[int, types.User] = {}
        self.chats: dict[int, Any] = {}
        self.history: dict[int, list[Any]] = {}  # marked peer id -> messages ascending
        self.next_id = 1
        self.pending: dict[tuple[int, str], str] = {}  # (auth key id, phone) -> phone_code_hash
        self.authorized: set[int] = set()
        self.password_pending: set[int] = set()
        self.flood: dict[str, int] = {}
        self.pending_updates: list[Any] = []  # delivered to the client on its next catch_up()
        self.requests: list[str] = []
        # file servers: (photo/document id, size type; "" for a document itself) -> bytes
        self.files: dict[tuple[int, str], bytes] = {}
        self.file_refs: dict[int, bytes] = {}  # the current file reference of each photo/document
        self.expire_ref_once: set[int] = set()  # file ids whose reference expires at the next GetFile
        self.file_parts: list[tuple[int, int, int]] = []  # (file id, offset, limit) of every part served
        # SRP state
        self.p = _good_prime()
        self.g = 3
        self.algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=os.urandom(8), salt2=os.urandom(16), g=self.g, p=self.p)
        self._srp: dict[int, tuple[int, bytes]] = {}

    # platform-side set-up
    def add_user(self, user_id: int, first_name: str, *, username: str | None = None,
                 access_hash: int = 777) -> types.User:
        user = types.User(id=user_id, access_hash=access_hash, first_name=first_name, username=username)
        self.users[user_id] = user
        self.history.setdefault(user_id, [])
        return user

    def add_message(self, marked_peer: int, text: str, *, out: bool = False, minutes: int = 0,
                    media: Any = None) -> Any:
        peer = utils.resolve_id(marked_peer)[1](utils.resolve_id(marked_peer)[0])
        msg = types.Message(id=self.next_id, peer_id=peer, date=T0 + timedelta(minutes=minutes), message=text,
                            out=out, from_id=types.PeerUser(self.me.id) if out else None, media=media)
        self.next_id += 1
        self.history.setdefault(marked_peer, []).append(msg)
        return msg

    def add_photo(self, marked_peer: int, content: bytes, *, caption: str = "") -> Any:
        """A photo as Telegram stores it: an inline stripped thumbnail, a small ``m`` size, the full
        picture as a progressive ``y`` size, and (like a profile video) an animated ``u`` video size
        that is larger still — which a download of "the photo" must not pick."""
        pid = secrets.randbits(62)
        thumb = content[: max(1, len(content) // 8)]
        video = b"\x00\x00\x00\x18ftypmp42" + b"v" * (len(content) * 2)
        self.file_refs[pid] = os.urandom(8)
        photo = types.Photo(id=pid, access_hash=secrets.randbits(62), file_reference=self.file_refs[pid], date=T0,
                            dc_id=2, sizes=[types.PhotoStrippedSize("i", b"\x01\x28\x28"),
                                            types.PhotoSize("m", 320, 240, len(thumb)),
                                            types.PhotoSizeProgressive("y", 1280, 960,
                                                                       [len(content) // 3, len(content)])],
                            video_sizes=[types.VideoSize("u", 800, 800, len(video))])
        self.files[(pid, "m")], self.files[(pid, "y")], self.files[(pid, "u")] = thumb, content, video
        return self.add_message(marked_peer, caption, media=types.MessageMediaPhoto(photo=photo))

    def add_document(self, marked_peer: int, content: bytes, *, mime_type: str, file_name: str,
                     declared_size: int | None = None, caption: str = "") -> Any:
        """A file; ``declared_size`` lets the metadata lie about the size (the bytes still arrive)."""
        did = secrets.randbits(62)
        self.file_refs[did] = os.urandom(8)
        doc = types.Document(id=did, access_hash=secrets.randbits(62), file_reference=self.file_refs[did], date=T0,
                             mime_type=mime_type, size=len(content) if declared_size is None else declared_size,
                             dc_id=2, attributes=[types.DocumentAttributeFilename(file_name)])
        self.files[(did, "")] = content
        return self.add_message(marked_peer, caption, media=types.MessageMediaDocument(document=doc))

    # --- request handlers ----------------------------------------------------------------------

    def handle(self, client: OfflineClient, request: Any) -> Any:
        name = type(request).__name__
        self.requests.append(name)
        if name in self.flood:
            raise errors.FloodWaitError(request, capture=self.flood.pop(name))
        key = client.session.auth_key.key_id if client.session.auth_key else 0
        if isinstance(request, functions.auth.SendCodeRequest):
            if request.phone_number != self.phone.lstrip("+") and request.phone_number != self.phone:
                raise errors.PhoneNumberInvalidError(request)
            code_hash = secrets.token_hex(8)
            self.pending[(key, self.phone)] = code_hash
            return types.auth.SentCode(type=types.auth.SentCodeTypeApp(length=len(self.code)),
                                       phone_code_hash=code_hash)
        if isinstance(request, functions.auth.SignInRequest):
            if self.pending.get((key, self.phone)) != request.phone_code_hash:
                raise errors.PhoneCodeExpiredError(request)
            if request.phone_code != self.code:
                raise errors.PhoneCodeInvalidError(request)
            if self.password is not None:
                self.password_pending.add(key)
                raise errors.SessionPasswordNeededError(request)
            self.authorized.add(key)
            return types.auth.Authorization(user=self.me)
        if isinstance(request, functions.account.GetPasswordRequest):
            return self._password_info(key)
        if isinstance(request, functions.auth.CheckPasswordRequest):
            if key not in self.password_pending or not self._check_srp(key, request.password):
                raise errors.PasswordHashInvalidError(request)
            self.password_pending.discard(key)
            self.authorized.add(key)
            return types.auth.Authorization(user=self.me)
        if isinstance(request, functions.users.GetUsersRequest):
            if key not in self.authorized:
                raise errors.AuthKeyUnregisteredError(request)
            return [self.me]
        if key not in self.authorized:
            raise errors.AuthKeyUnregisteredError(request)
        if isinstance(request, functions.updates.GetStateRequest):
            return types.updates.State(pts=1, qts=0, date=T0, seq=1, unread_count=0)
        if isinstance(request, functions.updates.GetDifferenceRequest):
            return types.updates.DifferenceEmpty(date=T0, seq=1)
        if isinstance(request, functions.messages.GetDialogsRequest):
            return self._dialogs()
        if isinstance(request, functions.messages.GetHistoryRequest):
            return self._get_history(request)
        if isinstance(request, functions.messages.GetMessagesRequest):
            return self._get_messages(request)
        if isinstance(request, functions.upload.GetFileRequest):
            return self._get_file(request)
        if isinstance(request, functions.messages.SendMessageRequest):
            marked = self._check_peer(request, request.peer)
            msg = self.add_message(marked, request.message, out=True, minutes=60)
            return types.UpdateShortSentMessage(id=msg.id, pts=2, pts_count=1, date=msg.date, out=True)
        raise NotImplementedError(f"offline Telegram does not answer {name}")

    def _check_peer(self, request: Any, peer: Any) -> int:
        marked = utils.get_peer_id(peer)
        if isinstance(peer, types.InputPeerUser):
            user = self.users.get(peer.user_id)
            if user is None or user.access_hash != peer.access_hash:
                raise errors.PeerIdInvalidError(request)
        return marked

    def _dialogs(self) -> types.messages.Dialogs:
        dialogs, tops = [], []
        for marked, msgs in sorted(self.history.items(), key=lambda kv: -(kv[1][-1].id if kv[1] else 0)):
            if not msgs:
                continue
            dialogs.append(types.Dialog(
                peer=utils.resolve_id(marked)[1](utils.resolve_id(marked)[0]), top_message=msgs[-1].id,
                read_inbox_max_id=0, read_outbox_max_id=0, unread_count=1, unread_mentions_count=0,
                unread_reactions_count=0, unread_poll_votes_count=0, notify_settings=types.PeerNotifySettings()))
            tops.append(msgs[-1])
        return types.messages.Dialogs(dialogs=dialogs, messages=tops, chats=list(self.chats.values()),
                                      users=[self.me, *self.users.values()])

    def _get_history(self, request: Any) -> types.messages.MessagesSlice:
        """Telegram's paging: messages newest first; start below ``offset_id``, shifted by ``add_offset``."""
        marked = self._check_peer(request, request.peer)
        desc = list(reversed(self.history.get(marked, [])))
        if request.offset_id:
            pos = next((i for i, m in enumerate(desc) if m.id < request.offset_id), len(desc))
        else:
            pos = 0
        end = pos + request.add_offset + request.limit  # a negative add_offset reaches newer messages
        page = desc[max(pos + request.add_offset, 0):max(end, 0)]
        if request.min_id:
            page = [m for m in page if m.id > request.min_id]
        if request.max_id:
            page = [m for m in page if m.id < request.max_id]
        return types.messages.MessagesSlice(count=len(desc), messages=page, topics=[], chats=[],
                                            users=[self.me, *self.users.values()])

    def _get_messages(self, request: Any) -> types.messages.Messages:
        """By id among the account's private chats and basic groups (ids are per account there):
        a message of another chat comes back too (the client must check), a missing one as empty."""
        found: list[Any] = []
        for ref in request.id:
            mid = utils.get_input_message(ref).id  # what TLRequest.resolve does on the real wire
            msg = next((m for marked, msgs in self.history.items() if marked > -1_000_000_000_000
                        for m in msgs if m.id == mid), None)
            if msg is None:
                found.append(types.MessageEmpty(id=mid, peer_id=None))
            else:  # the wire gives the client its own copy, with the file references of now
                copy = BinaryReader(bytes(msg)).tgread_object()
                media = getattr(copy, "media", None)
                for file in (getattr(media, "photo", None), getattr(media, "document", None)):
                    if file is not None and file.id in self.file_refs:
                        file.file_reference = self.file_refs[file.id]
                found.append(copy)
        return types.messages.Messages(messages=found, topics=[], chats=list(self.chats.values()),
                                       users=[self.me, *self.users.values()])

    def _get_file(self, request: Any) -> types.upload.File:
        """upload.getFile: parts at offsets divisible by 4 KiB, of at most 1 MiB, with a valid file reference."""
        loc = request.location
        if not isinstance(loc, types.InputPhotoFileLocation | types.InputDocumentFileLocation):
            raise NotImplementedError(f"offline Telegram serves no {type(loc).__name__}")
        content = self.files.get((loc.id, loc.thumb_size))
        if content is None:
            raise errors.LocationInvalidError(request)
        if loc.id in self.expire_ref_once:  # the reference expired while the client held the message
            self.expire_ref_once.discard(loc.id)
            self.file_refs[loc.id] = os.urandom(8)
        if loc.file_reference != self.file_refs.get(loc.id):
            raise errors.FileReferenceExpiredError(request)
        if request.offset % 4096 or request.limit % 4096 or not 0 < request.limit <= 1024 * 1024:
            raise errors.LimitInvalidError(request)
        self.file_parts.append((loc.id, request.offset, request.limit))
        return types.upload.File(type=types.storage.FileUnknown(), mtime=0,
                                 bytes=content[request.offset:request.offset + request.limit])

    # --- SRP (server side) ---------------------------------------------------------------------

    def _password_info(self, key: int) -> types.account.Password:
        p = int.from_bytes(self.p, "big")
        x = int.from_bytes(compute_hash(self.algo, self.password or ""), "big")
        v = pow(self.g, x, p)
        k = int.from_bytes(_h(num_bytes_for_hash(self.p), big_num_for_hash(self.g)), "big")
        b = int.from_bytes(os.urandom(256), "big")
        big_b = (k * v + pow(self.g, b, p)) % p
        srp_b = big_b.to_bytes(256, "big")
        srp_id = secrets.randbits(62)
        self._srp[srp_id] = (b, srp_b)
        self._verifier = v
        return types.account.Password(
            new_algo=types.PasswordKdfAlgoUnknown(), new_secure_algo=types.SecurePasswordKdfAlgoUnknown(),
            secure_random=os.urandom(32), has_password=True, current_algo=self.algo, srp_B=srp_b,
            srp_id=srp_id, hint="our pet")

    def _check_srp(self, key: int, check: Any) -> bool:
        if not isinstance(check, types.InputCheckPasswordSRP) or check.srp_id not in self._srp:
            return False
        b, srp_b = self._srp.pop(check.srp_id)
        p = int.from_bytes(self.p, "big")
        big_a = int.from_bytes(check.A, "big")
        u = int.from_bytes(_h(big_num_for_hash(big_a), num_bytes_for_hash(srp_b)), "big")
        s = pow(big_a * pow(self._verifier, u, p), b, p)
        k_session = _h(big_num_for_hash(s))
        m1 = _h(xor(_h(num_bytes_for_hash(self.p)), _h(big_num_for_hash(self.g))), _h(self.algo.salt1),
                _h(self.algo.salt2), big_num_for_hash(big_a), num_bytes_for_hash(srp_b), k_session)
        return bool(m1 == check.M1)


class OfflineClient(TelegramClient):
    """A real TelegramClient whose network is :class:`OfflineTelegram`."""

    def __init__(self, platform: OfflineTelegram, session: str = "") -> None:
        super().__init__(StringSession(session or None), API_ID, API_HASH, receive_updates=False)
        self.platform = platform
        self._offline_connected = False

    async def connect(self) -> None:
        if self.session.auth_key is None:  # like a first connection: a new auth key on DC 2
            self.session.set_dc(2, "149.154.167.51", 443)
            self.session.auth_key = AuthKey(os.urandom(256))
        self._offline_connected = True

    def is_connected(self) -> bool:
        return self._offline_connected

    async def disconnect(self) -> None:
        self._offline_connected = False

    async def catch_up(self) -> None:
        """Deliver the platform's pending updates through Telethon's own dispatch (event builders)."""
        updates, self.platform.pending_updates = self.platform.pending_updates, []
        users = [self.platform.me, *self.platform.users.values()]
        for update in await self._preprocess_updates(updates, users, list(self.platform.chats.values())):
            await self._dispatch_update(update)

    async def __call__(self, request: Any, ordered: bool = False, flood_sleep_threshold: int | None = None) -> Any:
        return self.platform.handle(self, request)

    async def _call(self, sender: Any, request: Any, ordered: bool = False,
                    flood_sleep_threshold: int | None = None) -> Any:
        # file downloads go through _call with the (unconnected) sender
        return self.platform.handle(self, request)
