"""Telegram user-account connector (Telethon behind the :mod:`~connectors.telegram.gateway` port).

Entry points others call:

- :func:`get_telegram_gateway` — a gateway from a channel's decrypted credentials
  (``api_id``, ``api_hash``, ``session`` (StringSession string), ``phone``);
- :func:`send_telegram` — send one outbox job (FloodWait comes out as ``RateLimited``); a text goes with
  a ``random_id`` derived from the job's idempotency key, so Telegram deduplicates a retry;
- :class:`TelegramConnector` — the ``send`` and ``media`` capability ports (see
  :mod:`connectors.registry`), using the peers the sync stored (Telegram has no webhooks: inbound
  comes from the sync and the listener).

``SWITCHBOARD_TELEGRAM_FAKE=1`` (tests and demo only) makes :func:`get_telegram_gateway` return a
:class:`~connectors.telegram.fake.FakeTelegramGateway` on the process-wide fake world.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from connectors.base import AuthenticationError, Identity, MediaRef, PermanentError, RateLimited
from connectors.media import StoredMedia
from connectors.telegram.gateway import (
    FloodWait,
    NotAuthorized,
    PeerRef,
    TelegramGateway,
    TgMessage,
    random_id_for,
)
from switchboard.types import OutboundRequest, Provider, SendResult

FAKE_ENV = "SWITCHBOARD_TELEGRAM_FAKE"

GatewayFactory = Callable[[Mapping[str, Any]], TelegramGateway]
PeerLookup = Callable[[int], PeerRef | None]  # marked chat id -> the peer the sync stored, if any

__all__ = ["FAKE_ENV", "GatewayFactory", "PeerLookup", "TelegramConnector", "check_credentials",
           "get_telegram_gateway", "send_telegram"]


def check_credentials(credentials: Mapping[str, Any], *, need_session: bool = False) -> tuple[int, str]:
    """(api_id, api_hash) of a Telegram channel; AuthenticationError saying what is missing."""
    try:
        api_id = int(credentials.get("api_id") or 0)
    except (TypeError, ValueError):
        api_id = 0
    api_hash = str(credentials.get("api_hash") or "").strip()
    if api_id <= 0 or not api_hash:
        raise AuthenticationError(
            "telegram channel credentials lack a numeric api_id and an api_hash (get them at "
            "https://my.telegram.org, API development tools)", code="BAD_CREDENTIALS")
    if need_session and not credentials.get("session"):
        raise AuthenticationError("telegram account not connected yet: log in on the Telegram login page",
                                  code="NOT_CONNECTED")
    return api_id, api_hash


def get_telegram_gateway(credentials: Mapping[str, Any], *, receive_updates: bool = True) -> TelegramGateway:
    """The gateway for one Telegram account. Raises AuthenticationError for unusable credentials."""
    session = str(credentials.get("session") or "")
    if os.environ.get(FAKE_ENV) == "1":
        from connectors.telegram.fake import FakeTelegramGateway, default_fake_world

        return FakeTelegramGateway(default_fake_world(), session)
    api_id, api_hash = check_credentials(credentials)
    from connectors.telegram.telethon_gateway import TelethonGateway

    return TelethonGateway.from_credentials(api_id, api_hash, session, receive_updates=receive_updates)


def _local_path(url: str | None, data: Mapping[str, Any]) -> str | None:
    path = data.get("path") or data.get("local_path")
    if path:
        return str(path)
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if parsed.scheme == "" and Path(url).is_absolute():
        return url
    return None


def send_telegram(gateway: TelegramGateway, job: OutboundRequest, *, peer: PeerRef | None = None) -> SendResult:
    """Send one outbound message (text, or local files with the body as the first caption).

    ``job.recipient_id`` is the chat's marked id (the contact's provider id). ``peer`` (with the
    access hash stored by the sync) saves a lookup; without it the gateway resolves the chat.
    """
    try:
        marked = int(job.recipient_id)
    except (TypeError, ValueError):
        raise PermanentError(f"recipient {job.recipient_id!r} is not a Telegram chat id",
                             code="PEER_ID_INVALID") from None
    if not job.body and not job.attachments:
        raise PermanentError("nothing to send: the message has neither text nor attachments", code="EMPTY")
    files: list[str] = []
    for att in job.attachments:
        path = _local_path(att.url, att.data)
        if path is None:
            raise PermanentError(f"Telegram sends local files only; attachment {att.file_name or att.url!r} "
                                 "has no local path", code="MEDIA_NOT_LOCAL")
        files.append(path)
    reply_to = None
    if job.reply_to_provider_message_id:
        chat, _, mid = job.reply_to_provider_message_id.partition(":")
        if chat == str(marked) and mid.isdigit():
            reply_to = int(mid)
    try:
        target = peer if peer is not None and peer.marked_id == marked else gateway.resolve_peer(marked)
        sent: list[TgMessage] = []
        if files:
            for i, path in enumerate(files):
                sent.append(gateway.send_file(target, path, caption=job.body if i == 0 else None))
        else:
            random_id = random_id_for(job.idempotency_key) if job.idempotency_key else None
            sent.append(gateway.send_text(target, job.body or "", reply_to=reply_to, random_id=random_id))
    except FloodWait as exc:
        raise flood_error(exc) from exc
    first = sent[0]
    return SendResult(provider_message_id=first.key, sent_at=first.date,
                      raw={"message_id": first.id, "chat_id": marked,
                           "extra_message_keys": [m.key for m in sent[1:]]})


class TelegramConnector:
    """A Telegram user account: sends (capability ``send``), fetches media (``media``), marks chats read
    and shows typing (``read receipts and typing``).

    No webhooks: inbound comes from the sync and the listener. ``peers`` looks up the peer (with its
    access hash) the sync stored for a chat, so sends and downloads need no lookup on Telegram's
    side; ``gateway_factory`` builds the gateway from the credentials (tests inject a fake world).
    """

    provider: Provider = "telegram"

    def __init__(self, credentials: Mapping[str, Any], *, gateway: TelegramGateway | None = None,
                 gateway_factory: GatewayFactory | None = None, peers: PeerLookup | None = None) -> None:
        if gateway is None and gateway_factory is None and os.environ.get(FAKE_ENV) != "1":
            check_credentials(credentials, need_session=True)
        self._credentials = dict(credentials)
        self._gateway = gateway
        self._factory = gateway_factory or _download_gateway
        self._peers = peers
        self._known: dict[int, PeerRef | None] = {}

    @property
    def gateway(self) -> TelegramGateway:
        if self._gateway is None:
            self._gateway = self._factory(self._credentials)
        return self._gateway

    def stored_peer(self, marked_id: int) -> PeerRef | None:
        """The peer the sync stored for this chat (looked up once per connector), if any."""
        if marked_id not in self._known:
            self._known[marked_id] = self._peers(marked_id) if self._peers is not None else None
        return self._known[marked_id]

    def send(self, request: OutboundRequest) -> SendResult:
        try:
            peer = self.stored_peer(int(request.recipient_id))
        except (TypeError, ValueError):
            peer = None  # send_telegram refuses the recipient with its reason
        return send_telegram(self.gateway, request, peer=peer)

    def check_identity(self) -> Identity:
        """get_me (capability ``IDENTITY``): the logged-in user; NotAuthorized when the session was
        revoked or never logged in."""
        user = self.gateway.me()
        if user is None:
            raise NotAuthorized("the Telegram session is no longer logged in (revoked or logged out): "
                                "log in again on the Telegram login page", code="AUTH_KEY_UNREGISTERED")
        who = user.display_name
        return Identity(str(user.id), f"{who} (+{user.phone})" if who and user.phone else who)

    def _peer_and_id(self, recipient_id: str, provider_message_id: str) -> tuple[PeerRef, int]:
        from connectors.telegram.media import parse_message_key

        chat_id, message_id = parse_message_key(provider_message_id)
        return self.stored_peer(chat_id) or self.gateway.resolve_peer(chat_id), message_id

    def mark_read(self, recipient_id: str, provider_message_id: str) -> None:
        """Acknowledge the chat read up to the customer's message ``"<chat id>:<message id>"``."""
        peer, message_id = self._peer_and_id(recipient_id, provider_message_id)
        _flood_as_rate_limit(lambda: self.gateway.mark_read(peer, message_id))

    def show_typing(self, recipient_id: str, provider_message_id: str) -> None:
        peer, _ = self._peer_and_id(recipient_id, provider_message_id)
        _flood_as_rate_limit(lambda: self.gateway.set_typing(peer))

    def fetch_media(self, media: MediaRef, dest_dir: Path, *, max_bytes: int) -> StoredMedia:
        from connectors.telegram.media import download_message_media, parse_message_key

        chat_id, message_id = parse_message_key(media.provider_message_id or "")
        peer = self.stored_peer(chat_id) or self.gateway.resolve_peer(chat_id)
        return download_message_media(self.gateway, peer, message_id, dest_dir, max_bytes=max_bytes,
                                      expected_media_id=media.provider_media_id)

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None


def flood_error(exc: FloodWait) -> RateLimited:
    """A FloodWait as the outbox's rate-limit error (retry after the seconds Telegram asked for)."""
    return RateLimited(f"Telegram FloodWait: retry in {exc.seconds} s", retry_after=float(exc.seconds),
                       code="FLOOD_WAIT")


def _flood_as_rate_limit(call: Callable[[], None]) -> None:
    try:
        call()
    except FloodWait as exc:
        raise flood_error(exc) from exc


def _download_gateway(credentials: Mapping[str, Any]) -> TelegramGateway:
    return get_telegram_gateway(credentials, receive_updates=False)
