"""Checks of a channel's credentials against its platform: an admin's "test connection" and the
scheduled ``check-credentials`` flow (Meta token expiry, ahead of time).

The platform is called outside any transaction; each result is recorded in its own unit of work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from connectors.base import IDENTITY, TOKEN_EXPIRY, AuthenticationError, ConnectorError, Identity
from connectors.registry import port, supports
from switchboard.clock import utcnow
from switchboard.services.channel_lifecycle import channel_by_id, record_connection_test
from switchboard.services.channels import (
    ERROR,
    PAUSED,
    ChannelView,
    credentials_refused,
    get_channel,
    list_channels,
    record_token_expiry,
)
from switchboard.types import Actor, RunStats
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionTest:
    channel: ChannelView
    ok: bool
    result: str  # who the platform says the account is, or its refusal


def check_connection(engine: Engine, connectors: ConnectorCache, actor: Actor, channel_id: int,
                    now: datetime | None = None) -> ConnectionTest:
    """Admin: one cheap identity call to the platform with the channel's current credentials (Graph
    ``GET /{phone-number-id}`` or ``/me``, Telegram get_me); the result is recorded on the channel and
    audited. Refused credentials put an active channel in ``error``; a success clears it."""
    with UnitOfWork(engine) as uow:
        channel_by_id(uow, actor, channel_id)  # the actor's check, before the platform is called
    connectors.forget(channel_id)  # the credentials may have changed a moment ago
    ok, refused = False, False
    try:
        _, checker = connectors.port(channel_id, IDENTITY)
        identity: Identity = checker.check_identity()
        ok, result = True, f"connected as {identity.describe()}"
    except AuthenticationError as exc:
        refused, result = True, f"credentials refused: {exc}"
    except ConnectorError as exc:
        result = str(exc)
    except Exception as exc:  # unreadable credentials, network trouble: shown, never a traceback
        log.warning("channel %s: connection test failed", channel_id, exc_info=True)
        result = f"{exc.__class__.__name__}: {exc}"
    with UnitOfWork(engine) as uow:
        view = record_connection_test(uow, actor, channel_id, ok=ok, result=result, now=now)
        if refused:
            credentials_refused(uow, channel_id, result, now)
            view = get_channel(uow, channel_id)
        uow.commit()
    return ConnectionTest(view, ok, result)


@dataclass
class ExpiryStats(RunStats):
    checked: int = 0
    expiring: int = 0  # expire within the warning period (admins see a banner)
    refused: int = 0  # the token is no longer valid: the channel is in error
    errors: list[str] = field(default_factory=list)


def check_credentials_once(engine: Engine, connectors: ConnectorCache, *, warn_days: int = 14,
                           now: datetime | None = None) -> ExpiryStats:
    """Ask the platform when each channel's token expires (Meta ``debug_token``; channels whose
    platform has no such call are skipped) and keep it on the channel: admins see a warning
    ``warn_days`` before, and an invalid token puts the channel in ``error`` at once."""
    now = now or utcnow()
    stats = ExpiryStats()
    with UnitOfWork(engine) as uow:
        channels = [c for c in list_channels(uow)  # a paused channel is not called (as by its syncs)
                    if supports(c.provider, TOKEN_EXPIRY) and c.status != PAUSED]
    for channel in channels:
        try:
            expires_at = port(connectors.get(channel.id)[1], TOKEN_EXPIRY).token_expiry()
        except AuthenticationError as exc:
            with UnitOfWork(engine) as uow:
                credentials_refused(uow, channel.id, f"access token no longer valid: {exc}", now)
                uow.commit()
            stats.refused += 1
            continue
        except Exception as exc:  # one channel's trouble never stops the others
            log.warning("channel %s: token expiry check failed", channel.id, exc_info=True)
            stats.errors.append(f"channel {channel.id}: {exc.__class__.__name__}")
            continue
        stats.checked += 1
        with UnitOfWork(engine) as uow:
            record_token_expiry(uow, channel.id, expires_at, now)
            uow.commit()
        if expires_at is not None and expires_at <= now + timedelta(days=warn_days) and channel.status != ERROR:
            stats.expiring += 1
    return stats
