"""Connector instances per channel, built from the channel's decrypted credentials (cached briefly)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, TypeVar

from sqlalchemy import Engine

from connectors.base import Capability, Connector
from connectors.email import EmailThread, ThreadLookup
from connectors.registry import get_connector, port
from connectors.telegram import GatewayFactory, PeerLookup
from connectors.telegram.gateway import PeerRef
from switchboard.services.channels import ChannelView, channel_credentials, get_channel, list_channels
from switchboard.services.email_threads import last_inbound_mail
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

_TTL_SECONDS = 30.0
log = logging.getLogger(__name__)
P = TypeVar("P", bound=Connector)


class ConnectorCache:
    """Builds connectors on demand and reuses them for ``ttl`` seconds (credentials may change)."""

    def __init__(self, engine: Engine, secret_key: bytes, ttl: float = _TTL_SECONDS, *,
                 telegram_gateway: GatewayFactory | None = None, public_base_url: str | None = None) -> None:
        self.engine = engine
        self.secret_key = secret_key
        self.ttl = ttl
        self.telegram_gateway = telegram_gateway  # tests: a fake Telegram world; None: the real one
        self.public_base_url = public_base_url  # None: PUBLIC_BASE_URL from the settings
        self._items: dict[int, tuple[float, ChannelView, Any]] = {}
        self._numbers: dict[tuple[int, str], tuple[float, dict[str, tuple[ChannelView, ...]]]] = {}
        self._lock = threading.Lock()

    def peek(self, channel_id: int) -> Any:
        """The cached connector if fresh, without touching the database (for async callers)."""
        hit = self._items.get(channel_id)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[2]
        return None

    def peek_stale(self, channel_id: int) -> Any:
        """The cached connector even if its time is up (None if there is none): for a caller that uses
        it while one refresh (:meth:`get`) runs, rather than making every caller wait for one."""
        hit = self._items.get(channel_id)
        return hit[2] if hit is not None else None

    def port(self, channel_id: int, capability: Capability[P]) -> tuple[ChannelView, P]:
        """The channel and its connector seen through one capability (``Unsupported`` if it has not
        got it): ``channel, sender = connectors.port(channel_id, SEND)``."""
        channel, connector = self.get(channel_id)
        return channel, port(connector, capability)

    def get(self, channel_id: int) -> tuple[ChannelView, Any]:
        """The channel and its connector (untyped: prefer :meth:`port`, which says what it needs)."""
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(channel_id)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1], hit[2]
        with UnitOfWork(self.engine) as uow:
            channel = get_channel(uow, channel_id)
            creds = channel_credentials(uow, Actor.system(channel.organization_id), channel_id, self.secret_key)
        connector = get_connector(channel.provider, external_id=channel.external_id, credentials=creds,
                                  peers=self._stored_peers(channel_id) if channel.provider == "telegram" else None,
                                  telegram_gateway=self.telegram_gateway,
                                  webhook_url=channel.webhook_url(self._base_url())
                                  if channel.provider == "twilio" else None,  # its status callback URL
                                  email_threads=self._email_threads(channel_id) if channel.provider == "email"
                                  else None)
        with self._lock:
            old = self._items.get(channel_id)
            self._items[channel_id] = (now, channel, connector)
        if old is not None:
            old[2].close()
        return channel, connector

    def _stored_peers(self, channel_id: int) -> PeerLookup:
        """Telegram: the peers (access hashes) the sync stored for this channel's chats."""
        from switchboard.workflows.telegram import peer_for_chat

        def lookup(marked_id: int) -> PeerRef | None:
            with UnitOfWork(self.engine) as uow:
                return peer_for_chat(uow, channel_id, marked_id)

        return lookup

    def _base_url(self) -> str:
        if self.public_base_url is None:
            from switchboard.settings import get_settings

            self.public_base_url = get_settings().public_base_url
        return self.public_base_url

    def _email_threads(self, channel_id: int) -> ThreadLookup:
        """Email: the customer's last inbound mail on this channel (a reply's threading headers)."""

        def lookup(address: str) -> EmailThread | None:
            with UnitOfWork(self.engine) as uow:
                mail = last_inbound_mail(uow, channel_id, address)
            return EmailThread(mail.message_id, mail.references, mail.subject) if mail else None

        return lookup

    def whatsapp_numbers(self, organization_id: int, provider: str, *,
                         refresh: bool = False) -> dict[str, tuple[ChannelView, ...]]:
        """Phone number id -> the organization's channels of ``provider`` (whatsapp or sandbox) that
        send from it (the ``phone_number_id`` credential, else the external id; normally one channel).

        Cached for ``ttl`` seconds; ``refresh=True`` reads it again (a number not found may belong to
        a channel added a moment ago). Never lists another organization's channels.
        """
        from connectors.whatsapp import channel_phone_number_id

        now = time.monotonic()
        cache_key = (organization_id, provider)
        with self._lock:
            hit = self._numbers.get(cache_key)
            if hit is not None and not refresh and now - hit[0] < self.ttl:
                return hit[1]
        found: dict[str, list[ChannelView]] = {}
        with UnitOfWork(self.engine) as uow:
            for channel in list_channels(uow, organization_id):
                if channel.provider != provider:
                    continue
                try:
                    credentials = channel_credentials(uow, Actor.system(organization_id), channel.id, self.secret_key)
                except Exception:  # one channel's unreadable credentials must not stop the others
                    log.warning("channel %s: credentials unreadable, routing by its external id", channel.id,
                                exc_info=True)
                    credentials = {}
                number = channel_phone_number_id(channel.external_id, credentials)
                if number:
                    found.setdefault(number, []).append(channel)
        numbers = {k: tuple(v) for k, v in found.items()}
        with self._lock:
            self._numbers[cache_key] = (now, numbers)
        return numbers

    def forget(self, channel_id: int) -> None:
        """Build the channel's connector again on next use (its credentials changed)."""
        with self._lock:
            old = self._items.pop(channel_id, None)
        if old is not None:
            old[2].close()

    def close(self) -> None:
        with self._lock:
            items, self._items = self._items, {}
            self._numbers = {}
        for _, _, c in items.values():
            c.close()
