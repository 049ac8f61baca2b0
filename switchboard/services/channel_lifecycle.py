"""A channel's life after it was added (admins, from Channels & health and the CLI): rename, change its
credentials, pause and resume, remove, record a connection test; and the warnings admins see about
refused or expiring credentials.

Statuses: ``active`` (works), ``paused`` (the receiver still stores its deliveries, nothing is
processed or sent until it is resumed, then it catches up in order), ``error`` (its credentials were
refused: sends wait, admins see a banner; updating the credentials, a successful test or resuming
makes it active again) and ``removed`` (history kept, webhooks answered 410, never listed for work).
Every change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from switchboard.auth.audit import record_audit
from switchboard.clock import utcnow
from switchboard.crypto import decrypt_json
from switchboard.db.schema import Channel
from switchboard.errors import Conflict, InvalidInput, NotFound
from switchboard.policy import Action, require
from switchboard.services.channels import (
    ACTIVE,
    CHANNEL_CREDENTIALS_CHANGED,
    ERROR,
    PAUSED,
    PHONE_NUMBER_PROVIDERS,
    REMOVED,
    ChannelView,
    _aad,
    _organization_channel,
    _store_credentials,
    _view,
    check_rate_limit,
)
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

CHANNEL_RENAMED = "channel.renamed"
CHANNEL_PAUSED = "channel.paused"
CHANNEL_RESUMED = "channel.resumed"
CHANNEL_REMOVED = "channel.removed"
CHANNEL_TESTED = "channel.connection_tested"
CHANNEL_RATE_CHANGED = "channel.rate_limit_changed"


def _admin_channel(uow: UnitOfWork, actor: Actor, channel_id: int) -> tuple[Actor, Channel]:
    actor = require(uow, actor, Action.MANAGE_CHANNELS)
    return actor, _organization_channel(uow, actor, channel_id)


def _audit(uow: UnitOfWork, actor: Actor, row: Channel, action: str, **details: Any) -> None:
    record_audit(uow, organization_id=actor.organization_id, actor_user_id=actor.acting_user_id, action=action,
                 target=row.key, details={"channel_id": row.id, **details})


def _not_removed(row: Channel) -> None:
    if row.status == REMOVED:
        raise Conflict(f"channel {row.key!r} was removed; nothing can be changed on it any more")


def channel_by_key(uow: UnitOfWork, actor: Actor, key: str) -> ChannelView:
    """Admin: the organization's channel with this key (removed ones included)."""
    actor = require(uow, actor, Action.MANAGE_CHANNELS)
    row = uow.session.execute(
        select(Channel).where(Channel.organization_id == actor.organization_id, Channel.key == key.strip())
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no channel {key!r} in this organization (see `switchboard channel list`)")
    return _view(row)


def channel_by_id(uow: UnitOfWork, actor: Actor, channel_id: int) -> ChannelView:
    """Admin: one channel of the organization (removed ones included)."""
    return _view(_admin_channel(uow, actor, channel_id)[1])


def all_channels(uow: UnitOfWork, actor: Actor) -> list[ChannelView]:
    """Admin: every channel of the organization, removed ones included (last)."""
    actor = require(uow, actor, Action.MANAGE_CHANNELS)
    rows = uow.session.execute(
        select(Channel).where(Channel.organization_id == actor.organization_id)
        .order_by(Channel.status == REMOVED, Channel.id)
    ).scalars()
    return [_view(r) for r in rows]


def rename_channel(uow: UnitOfWork, actor: Actor, channel_id: int, name: str) -> ChannelView:
    """Admin: change the channel's display name (its key, and so its URLs, stay)."""
    actor, row = _admin_channel(uow, actor, channel_id)
    _not_removed(row)
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a channel's name is 1 to 200 characters")
    if name != row.name:
        _audit(uow, actor, row, CHANNEL_RENAMED, before=row.name, after=name)
        row.name = name
        uow.session.flush()
    return _view(row)


def set_rate_limit(uow: UnitOfWork, actor: Actor, channel_id: int, rate_limit_per_second: float) -> ChannelView:
    """Admin: change how many messages per second the channel sends."""
    actor, row = _admin_channel(uow, actor, channel_id)
    _not_removed(row)
    check_rate_limit(rate_limit_per_second)
    if rate_limit_per_second != row.rate_limit_per_second:
        _audit(uow, actor, row, CHANNEL_RATE_CHANGED, before=row.rate_limit_per_second, after=rate_limit_per_second)
        row.rate_limit_per_second = rate_limit_per_second
        uow.session.flush()
    return _view(row)


def update_credentials(uow: UnitOfWork, actor: Actor, channel_id: int, secret_key: bytes,
                       credentials: dict[str, Any]) -> ChannelView:
    """Admin: change some of the channel's credentials (the others are kept; an empty value removes
    one), encrypted again; audited with the names of the fields that changed, never their values. A
    channel in ``error`` (refused credentials) is active again: the next send tries the new ones."""
    actor, row = _admin_channel(uow, actor, channel_id)
    _not_removed(row)
    if not credentials:
        raise InvalidInput("no credential given: use KEY=VALUE (e.g. access_token=…)")
    stored: dict[str, Any] = decrypt_json(secret_key, row.credentials_enc, _aad(row.id)) if row.credentials_enc else {}
    merged = {k: v for k, v in {**stored, **credentials}.items() if v not in (None, "")}
    number = str(merged.get("phone_number_id") or "").strip()
    if row.provider in PHONE_NUMBER_PROVIDERS and number and row.external_id and number != row.external_id:
        raise InvalidInput(f"the phone_number_id credential {number!r} is not this channel's number "
                           f"{row.external_id!r}: add a channel for another number")
    changed = sorted(k for k in set(stored) | set(merged) if stored.get(k) != merged.get(k))
    if not changed:
        return _view(row)
    _store_credentials(uow, row.id, secret_key, merged)
    _audit(uow, actor, row, CHANNEL_CREDENTIALS_CHANGED, credentials=changed)
    if row.status == ERROR:
        _set_status(uow, actor, row, ACTIVE, CHANNEL_RESUMED, reason="credentials updated")
    uow.session.refresh(row)
    return _view(row)


def _set_status(uow: UnitOfWork, actor: Actor, row: Channel, status: str, action: str, **details: Any) -> None:
    _audit(uow, actor, row, action, before=row.status, after=status, **details)
    values: dict[str, Any] = {"status": status}
    if status == ACTIVE:
        values.update(last_error=None, last_error_at=None)
    uow.session.execute(update(Channel).where(Channel.id == row.id).values(**values))
    uow.session.refresh(row)


def pause_channel(uow: UnitOfWork, actor: Actor, channel_id: int) -> ChannelView:
    """Admin: stop processing and sending on the channel (its deliveries are still stored). Idempotent."""
    actor, row = _admin_channel(uow, actor, channel_id)
    _not_removed(row)
    if row.status != PAUSED:
        _set_status(uow, actor, row, PAUSED, CHANNEL_PAUSED)
    return _view(row)


def resume_channel(uow: UnitOfWork, actor: Actor, channel_id: int) -> ChannelView:
    """Admin: a paused channel (or one in error, to try again) works again: the deliveries stored
    meanwhile are processed in the order they arrived, its queued messages are sent. Idempotent."""
    actor, row = _admin_channel(uow, actor, channel_id)
    _not_removed(row)
    if row.status != ACTIVE:
        _set_status(uow, actor, row, ACTIVE, CHANNEL_RESUMED)
    return _view(row)


def remove_channel(uow: UnitOfWork, actor: Actor, channel_id: int) -> ChannelView:
    """Admin: remove the channel. Its conversations and messages stay (history); its webhooks are
    answered 410 Gone, it is never listed for sending or syncing again, its key is not reused.
    Idempotent."""
    actor, row = _admin_channel(uow, actor, channel_id)
    if row.status != REMOVED:
        _set_status(uow, actor, row, REMOVED, CHANNEL_REMOVED)
    return _view(row)


def record_connection_test(uow: UnitOfWork, actor: Actor, channel_id: int, *, ok: bool, result: str,
                           now: datetime | None = None) -> ChannelView:
    """Admin: keep the result of a connection test on the channel (shown on Channels & health);
    audited. A successful test makes a channel in ``error`` active again."""
    actor, row = _admin_channel(uow, actor, channel_id)
    _not_removed(row)
    now = now or utcnow()
    text = f"{'ok' if ok else 'failed'}: {result}"[:1000]
    uow.session.execute(update(Channel).where(Channel.id == row.id).values(checked_at=now, check_result=text))
    _audit(uow, actor, row, CHANNEL_TESTED, ok=ok, result=text)
    uow.session.refresh(row)
    if ok and row.status == ERROR:
        _set_status(uow, actor, row, ACTIVE, CHANNEL_RESUMED, reason="connection test passed")
    return _view(row)


@dataclass(frozen=True, slots=True)
class CredentialWarning:
    channel_key: str
    channel_name: str
    message: str


def credential_warnings(uow: UnitOfWork, actor: Actor, *, within_days: int = 14,
                        now: datetime | None = None) -> list[CredentialWarning]:
    """Admin: the organization's channels whose credentials were refused (status ``error``) or expire
    within ``within_days`` (the banner on top of the admins' pages)."""
    actor = require(uow, actor, Action.MANAGE_CHANNELS)
    now = now or utcnow()
    soon = now + timedelta(days=within_days)
    rows = uow.session.execute(
        select(Channel).where(Channel.organization_id == actor.organization_id, Channel.status != REMOVED,
                              or_(Channel.status == ERROR, Channel.credentials_expire_at <= soon))
        .order_by(Channel.id)
    ).scalars()
    out = []
    for row in rows:
        if row.status == ERROR:
            message = f"credentials refused: {row.last_error or 'see the channel'}; update them, then test it"
        else:
            assert row.credentials_expire_at is not None
            left = row.credentials_expire_at - now
            message = ("the access token has expired" if left.total_seconds() <= 0 else
                       f"the access token expires on {row.credentials_expire_at:%Y-%m-%d %H:%M} UTC "
                       f"(in {max(0, left.days)} days): put a new one in before")
        out.append(CredentialWarning(row.key, row.name, message))
    return out
