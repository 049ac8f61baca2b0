"""Channels: a connected platform account (WhatsApp number, page, IG account, Telegram user, sandbox)."""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.auth.audit import record_audit
from switchboard.clock import utcnow
from switchboard.crypto import decrypt_json, encrypt_json
from switchboard.db.schema import PROVIDERS, Channel, ChannelPermission, User
from switchboard.errors import Conflict, InvalidInput, NotFound
from switchboard.policy import Action, require, require_organization
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PHONE_NUMBER_PROVIDERS = ("whatsapp", "sandbox")  # channels identified by a WhatsApp phone number id
CHANNEL_CREATED = "channel.created"
CHANNEL_CREDENTIALS_READ = "channel.credentials_read"
CHANNEL_CREDENTIALS_CHANGED = "channel.credentials_changed"
CHANNEL_CREDENTIALS_REFUSED = "channel.credentials_refused"
CHANNEL_CREDENTIALS_EXPIRY = "channel.credentials_expiry"
ACTIVE, PAUSED, ERROR, REMOVED = "active", "paused", "error", "removed"


@dataclass(frozen=True, slots=True)
class ChannelView:
    id: int
    organization_id: int
    key: str
    provider: str
    name: str
    external_id: str | None
    webhook_key: str
    status: str
    last_error: str | None
    rate_limit_per_second: float
    last_error_at: datetime | None = None
    checked_at: datetime | None = None
    check_result: str | None = None  # the last connection test: "ok: …" or the platform's refusal
    credentials_expire_at: datetime | None = None

    def webhook_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/webhooks/{self.provider}/{self.webhook_key}"


def _view(row: Channel) -> ChannelView:
    return ChannelView(row.id, row.organization_id, row.key, row.provider, row.name, row.external_id,
                       row.webhook_key, row.status, row.last_error, row.rate_limit_per_second, row.last_error_at,
                       row.checked_at, row.check_result, row.credentials_expire_at)


def _aad(channel_id: int) -> bytes:
    return f"channel:{channel_id}".encode()


def create_channel(
    uow: UnitOfWork,
    actor: Actor,
    *,
    key: str,
    provider: str,
    name: str,
    secret_key: bytes,
    credentials: dict[str, Any] | None = None,
    external_id: str | None = None,
    rate_limit_per_second: float = 80,
) -> ChannelView:
    """Admin: create a channel of the actor's organization; credentials are AES-256-GCM encrypted;
    audited (the names of the credentials, never their values).

    Idempotent on its key: the same channel asked for again is returned as it is. A key that exists
    with other settings (a new token, say) is a Conflict pointing to ``channel update``: creating never
    changes an existing channel."""
    actor = require(uow, actor, Action.MANAGE_CHANNELS)
    organization_id = actor.organization_id
    if provider not in PROVIDERS:
        raise InvalidInput(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    if not _KEY_RE.match(key):
        raise InvalidInput(f"channel key {key!r}: use lowercase letters, digits, '-' or '_' (max 64)")
    check_rate_limit(rate_limit_per_second)
    existing = uow.session.execute(
        select(Channel).where(Channel.organization_id == organization_id, Channel.key == key)
    ).scalar_one_or_none()
    if existing is not None:
        _same_channel(existing, secret_key, provider=provider, name=name, credentials=credentials or {},
                      external_id=external_id, rate_limit_per_second=rate_limit_per_second)
        return _view(existing)
    if provider in PHONE_NUMBER_PROVIDERS:
        external_id = _phone_number_id(uow, organization_id, provider, external_id, credentials or {})
    channel_id = uow.session.execute(
        insert(Channel)
        .values(
            organization_id=organization_id,
            key=key,
            provider=provider,
            name=name,
            external_id=external_id,
            webhook_key=secrets.token_urlsafe(24),
            rate_limit_per_second=rate_limit_per_second,
        )
        .returning(Channel.id)
    ).scalar_one()
    if credentials:
        _store_credentials(uow, channel_id, secret_key, credentials)
    record_audit(uow, organization_id=organization_id, actor_user_id=actor.acting_user_id,
                 action=CHANNEL_CREATED, target=key,
                 details={"provider": provider, "name": name, "external_id": external_id,
                          "rate_limit_per_second": rate_limit_per_second,
                          "credentials": sorted(credentials or {})})
    return _view(_channel_row(uow, channel_id))


def _same_channel(row: Channel, secret_key: bytes, *, provider: str, name: str, credentials: dict[str, Any],
                  external_id: str | None, rate_limit_per_second: float) -> None:
    """Conflict unless ``row`` already is the channel asked for (what differs is named, never a value)."""
    if row.status == REMOVED:
        raise Conflict(f"channel {row.key!r} was removed; its key stays with its history: choose another key")
    stored = decrypt_json(secret_key, row.credentials_enc, _aad(row.id)) if row.credentials_enc else {}
    differs = [what for what, same in (
        ("provider", row.provider == provider), ("name", row.name == name),
        ("account id", external_id in (None, "", row.external_id)),
        ("rate limit", row.rate_limit_per_second == rate_limit_per_second),
        *((f"credential {k}", str(stored.get(k)) == str(v)) for k, v in sorted(credentials.items())),
    ) if not same]
    if differs:
        raise Conflict(f"channel {row.key!r} already exists with another {', '.join(differs)}; change it with "
                       f"`switchboard channel update {row.key} --credential KEY=VALUE` (or Channels & health)"
                       if row.provider == provider else
                       f"channel {row.key!r} already exists with provider {row.provider}")


def check_rate_limit(rate_limit_per_second: float) -> None:
    """Sends per second must be a finite number above 0 (fractions allowed: 0.5 is one every 2 s)."""
    if isinstance(rate_limit_per_second, bool) or not isinstance(rate_limit_per_second, int | float) \
            or not math.isfinite(rate_limit_per_second) or rate_limit_per_second <= 0:
        raise InvalidInput(f"the rate limit must be a positive number of messages per second, "
                           f"not {rate_limit_per_second!r}")


def _phone_number_id(uow: UnitOfWork, organization_id: int, provider: str, external_id: str | None,
                     credentials: dict[str, Any]) -> str | None:
    """A WhatsApp channel's external id is its phone number id (deliveries are routed by it): taken
    from the ``phone_number_id`` credential when not given, never different from it, and not the
    number of another channel of the organization."""
    given = str(credentials.get("phone_number_id") or "").strip() or None
    external_id = (external_id or "").strip() or None
    if given and external_id and given != external_id:
        raise InvalidInput(f"the phone_number_id credential {given!r} and the account id {external_id!r} differ: "
                           "a WhatsApp channel's account id is its phone number id")
    number = external_id or given
    if number is not None:
        taken = uow.session.execute(
            select(Channel.key).where(Channel.organization_id == organization_id, Channel.provider == provider,
                                      Channel.external_id == number)
        ).scalars().first()
        if taken is not None:
            raise InvalidInput(f"phone number id {number} is already channel {taken!r} of this organization")
    return number


def _channel_row(uow: UnitOfWork, channel_id: int) -> Channel:
    row = uow.session.get(Channel, channel_id)
    if row is None:
        raise NotFound(f"channel {channel_id} does not exist")
    return row


def _organization_channel(uow: UnitOfWork, actor: Actor, channel_id: int) -> Channel:
    row = uow.session.get(Channel, channel_id)
    require_organization(actor, None if row is None else row.organization_id, f"channel {channel_id}")
    assert row is not None
    return row


def get_channel(uow: UnitOfWork, channel_id: int) -> ChannelView:
    """A channel by id, for flows that hold the id (no access check: never reachable by a person)."""
    return _view(_channel_row(uow, channel_id))


def channel_by_webhook_key(uow: UnitOfWork, provider: str, webhook_key: str) -> ChannelView | None:
    """The channel a webhook URL names (the receiver; the key is the secret part of the URL)."""
    row = uow.session.execute(
        select(Channel).where(Channel.webhook_key == webhook_key, Channel.provider == provider)
    ).scalar_one_or_none()
    return _view(row) if row is not None else None


def list_channels(uow: UnitOfWork, organization_id: int | None = None, *,
                  include_removed: bool = False) -> list[ChannelView]:
    """Every channel (of one organization), for flows and the operator's CLI; pages use
    :func:`organization_channels`. Removed channels only with ``include_removed`` (their history
    stays; nothing works on them any more)."""
    stmt = select(Channel).order_by(Channel.organization_id, Channel.id)
    if organization_id is not None:
        stmt = stmt.where(Channel.organization_id == organization_id)
    if not include_removed:
        stmt = stmt.where(Channel.status != REMOVED)
    return [_view(r) for r in uow.session.execute(stmt).scalars()]


def organization_channels(uow: UnitOfWork, actor: Actor, *, provider: str | None = None) -> list[ChannelView]:
    """Admin: the channels of the actor's organization (optionally of one provider)."""
    actor = require(uow, actor, Action.MANAGE_CHANNELS)
    return [c for c in list_channels(uow, actor.organization_id) if provider is None or c.provider == provider]


def channel_credentials(uow: UnitOfWork, actor: Actor, channel_id: int, secret_key: bytes) -> dict[str, Any]:
    """Admin (or the system actor of a flow): the channel's decrypted credentials. A person's read is
    audited (which channel, never the values)."""
    actor = require(uow, actor, Action.MANAGE_CHANNELS)
    row = _organization_channel(uow, actor, channel_id)
    if not actor.is_system:
        record_audit(uow, organization_id=actor.organization_id, actor_user_id=actor.acting_user_id,
                     action=CHANNEL_CREDENTIALS_READ, target=row.key, details={"channel_id": channel_id})
    if row.credentials_enc is None:
        return {}
    return decrypt_json(secret_key, row.credentials_enc, _aad(channel_id))


def set_channel_credentials(uow: UnitOfWork, actor: Actor, channel_id: int, secret_key: bytes,
                            credentials: dict[str, Any]) -> None:
    """Admin: replace the channel's credentials (encrypted); audited with the names of the fields. A
    channel in ``error`` (refused credentials) is active again."""
    actor = require(uow, actor, Action.MANAGE_CHANNELS)
    row = _organization_channel(uow, actor, channel_id)
    _store_credentials(uow, channel_id, secret_key, credentials)
    if row.status == ERROR:  # new credentials (a Telegram login again): the next call tries them
        record_channel_error(uow, channel_id, None)
    record_audit(uow, organization_id=actor.organization_id, actor_user_id=actor.acting_user_id,
                 action=CHANNEL_CREDENTIALS_CHANGED, target=row.key,
                 details={"channel_id": channel_id, "credentials": sorted(credentials)})


def _store_credentials(uow: UnitOfWork, channel_id: int, secret_key: bytes, credentials: dict[str, Any]) -> None:
    uow.session.execute(
        update(Channel)
        .where(Channel.id == channel_id)
        .values(credentials_enc=encrypt_json(secret_key, credentials, _aad(channel_id)))
    )


def record_channel_error(uow: UnitOfWork, channel_id: int, error: str | None,
                         now: datetime | None = None) -> None:
    """Keep the last platform error on the channel (shown in the admin view); None clears it (flows):
    the channel worked again, so a channel in ``error`` is active again."""
    values: dict[str, Any] = {"last_error": error, "last_error_at": (now or utcnow()) if error else None}
    if error is None:
        values["status"] = case((Channel.status == ERROR, ACTIVE), else_=Channel.status)
    uow.session.execute(update(Channel).where(Channel.id == channel_id).values(**values))


def credentials_refused(uow: UnitOfWork, channel_id: int, error: str, now: datetime | None = None) -> bool:
    """The platform refused the channel's credentials (Graph error 190, a revoked Telegram session):
    an active channel goes to status ``error`` with the error (the outbox stops claiming its messages
    and admins see a banner) until an admin updates its credentials, tests it or resumes it. Audited
    once, when the status changes; returns whether it did (flows)."""
    now = now or utcnow()
    row = uow.session.execute(
        update(Channel).where(Channel.id == channel_id, Channel.status == ACTIVE)
        .values(status=ERROR, last_error=error, last_error_at=now)
        .returning(Channel.organization_id, Channel.key)
    ).first()
    if row is None:  # paused, removed or already in error: keep the newest error all the same
        record_channel_error(uow, channel_id, error, now)
        return False
    record_audit(uow, organization_id=row.organization_id, actor_user_id=None, action=CHANNEL_CREDENTIALS_REFUSED,
                 target=row.key, details={"channel_id": channel_id, "error": error[:500]}, now=now)
    return True


def record_token_expiry(uow: UnitOfWork, channel_id: int, expires_at: datetime | None,
                        now: datetime | None = None) -> bool:
    """Keep when the channel's access token expires (the expiry check flow); audited when it changes.
    Returns whether it changed."""
    row = _channel_row(uow, channel_id)
    if row.credentials_expire_at == expires_at:
        return False
    uow.session.execute(update(Channel).where(Channel.id == channel_id).values(credentials_expire_at=expires_at))
    record_audit(uow, organization_id=row.organization_id, actor_user_id=None, action=CHANNEL_CREDENTIALS_EXPIRY,
                 target=row.key, details={"channel_id": channel_id,
                                          "expires_at": expires_at.isoformat() if expires_at else None}, now=now)
    return True


def grant_channel_permission(uow: UnitOfWork, actor: Actor, *, user_id: int, channel_id: int,
                             can_view: bool = True, can_send: bool = False) -> None:
    """Set a user's {view, send} on a channel of the actor's organization (``send`` implies ``view``).

    The permission editor (:mod:`switchboard.auth.admin`) audits the change; flows and the CLI act as
    the organization's system actor."""
    actor = require(uow, actor, Action.MANAGE_PERMISSIONS)
    user = uow.session.get(User, user_id)
    channel = uow.session.get(Channel, channel_id)
    require_organization(actor, None if user is None else user.organization_id, f"user {user_id}")
    require_organization(actor, None if channel is None else channel.organization_id, f"channel {channel_id}")
    stmt = pg_insert(ChannelPermission).values(
        user_id=user_id, channel_id=channel_id, can_view=can_view or can_send, can_send=can_send
    )
    uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "channel_id"],
            set_={"can_view": stmt.excluded.can_view, "can_send": stmt.excluded.can_send},
        )
    )
