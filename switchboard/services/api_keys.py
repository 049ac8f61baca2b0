"""HTTP API keys: create (the secret is shown once), list, revoke, authenticate, rate limit, usage.

* A key is ``sb_live_`` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored; a
  fast hash is right here because the secret is random and long, not a password a person chose
  (docs/security.md). The first characters (``prefix``, e.g. ``sb_live_ab12cd``) are kept in clear so
  people can tell keys apart.
* Admins manage keys (:attr:`Action.MANAGE_API_KEYS`); every creation and revocation is audited.
* :func:`authenticate` turns the bearer secret into the key's actor (:meth:`Actor.for_api_key`), in
  one UPDATE that also stamps ``last_used_at`` and counts the request in the key's one-minute window;
  the window lives in the key's row, so every receiver process shares it. Over the limit it returns
  a :class:`KeyCheck` with ``retry_after`` (a refusal that is kept: the count is committed).
* Usage per key per UTC day (requests, messages sent, errors) is counted by :func:`count_usage`.
* Idempotency: :func:`replayed_response` / :func:`remember_response` keep the first answer per key and
  ``Idempotency-Key`` with the SHA-256 of its request; another request with the same key is a Conflict.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.auth.audit import record_audit
from switchboard.clock import utcnow
from switchboard.db.schema import API_SCOPES, ApiIdempotency, ApiKey, ApiKeyUsage, Channel, User
from switchboard.errors import AuthError, Conflict, InvalidInput, NotFound
from switchboard.policy import Action, key_refusal, require
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

KEY_PREFIX = "sb_live_"
SHOWN_CHARS = 6  # of the random part, kept in clear in ``prefix``
MAX_EXPIRY_DAYS = 3650
DEFAULT_RATE_LIMIT = 600  # requests per minute
WINDOW = timedelta(minutes=1)
IDEMPOTENCY_TTL = timedelta(hours=24)

API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    channel_keys: tuple[str, ...] | None  # None: every channel
    rate_limit_per_minute: int
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    created_by: str | None  # the admin's email (None: the CLI)

    def status(self, now: datetime | None = None) -> str:
        """active | revoked | expired"""
        reason = key_refusal(self.revoked_at, self.expires_at, now or utcnow())
        return "active" if reason is None else ("revoked" if self.revoked_at is not None else "expired")


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    view: ApiKeyView
    key: str  # the whole secret: shown once, never stored


@dataclass(frozen=True, slots=True)
class UsageDay:
    api_key_id: int
    prefix: str
    day: date
    requests: int
    messages_sent: int
    errors: int


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """The key's actor; ``retry_after`` (seconds) when this request is over the key's rate limit."""

    actor: Actor
    retry_after: int | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _clean_scopes(scopes: Sequence[str]) -> list[str]:
    wanted = {s.strip() for s in scopes if s and s.strip()}
    if not wanted:
        raise InvalidInput(f"give the key at least one scope: {', '.join(API_SCOPES)}")
    unknown = sorted(wanted - set(API_SCOPES))
    if unknown:
        raise InvalidInput(f"unknown scope {', '.join(map(repr, unknown))}; use {', '.join(API_SCOPES)}")
    return [s for s in API_SCOPES if s in wanted]


def _channel_ids(uow: UnitOfWork, organization_id: int, channel_keys: Sequence[str]) -> list[int]:
    keys = sorted({k.strip() for k in channel_keys if k and k.strip()})
    if not keys:
        raise InvalidInput("a channel restriction needs at least one channel key")
    found = dict(uow.session.execute(select(Channel.key, Channel.id).where(
        Channel.organization_id == organization_id, Channel.key.in_(keys))).tuples().all())
    missing = [k for k in keys if k not in found]
    if missing:
        raise NotFound(f"no channel {', '.join(map(repr, missing))} in your organization")
    return sorted(int(found[k]) for k in keys)


def _views(uow: UnitOfWork, *where: Any) -> list[ApiKeyView]:
    rows = uow.session.execute(
        select(ApiKey, User.email).outerjoin(User, User.id == ApiKey.created_by_user_id)
        .where(*where).order_by(ApiKey.id.desc())).all()
    channel_ids = {int(c) for k, _ in rows for c in (k.channel_ids or ())}
    names = dict(uow.session.execute(select(Channel.id, Channel.key).where(Channel.id.in_(channel_ids)))
                 .tuples().all()) if channel_ids else {}
    return [ApiKeyView(k.id, k.name, k.prefix, tuple(k.scopes),
                       None if k.channel_ids is None else tuple(names.get(int(c), f"#{c}") for c in k.channel_ids),
                       k.rate_limit_per_minute, k.expires_at, k.revoked_at, k.last_used_at, k.created_at, email)
            for k, email in rows]


def create_api_key(uow: UnitOfWork, actor: Actor, *, name: str, scopes: Sequence[str],
                   channel_keys: Sequence[str] | None = None, expires_in_days: int | None = None,
                   rate_limit_per_minute: int = DEFAULT_RATE_LIMIT, now: datetime | None = None) -> CreatedApiKey:
    """Admins: a new key with ``scopes``, optionally only for the channels ``channel_keys`` and expiring
    after ``expires_in_days``. The returned secret is shown once; only its hash is kept."""
    now = now or utcnow()
    me = require(uow, actor, Action.MANAGE_API_KEYS)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("the key needs a name of 1 to 200 characters (what uses it, e.g. 'shop orders')")
    clean = _clean_scopes(scopes)
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(f"a key expires after 1 to {MAX_EXPIRY_DAYS} days")
    if not 1 <= rate_limit_per_minute <= 1_000_000:
        raise InvalidInput("the rate limit is 1 to 1,000,000 requests per minute")
    channels = None if channel_keys is None else _channel_ids(uow, me.organization_id, channel_keys)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = key[:len(KEY_PREFIX) + SHOWN_CHARS]
    expires_at = None if expires_in_days is None else now + timedelta(days=expires_in_days)
    key_id = uow.session.execute(pg_insert(ApiKey).values(
        organization_id=me.organization_id, name=name, prefix=prefix, secret_hash=hash_key(key), scopes=clean,
        channel_ids=channels, rate_limit_per_minute=rate_limit_per_minute, expires_at=expires_at,
        created_by_user_id=me.acting_user_id, created_at=now).returning(ApiKey.id)).scalar_one()
    record_audit(uow, organization_id=me.organization_id, actor_user_id=me.acting_user_id, action=API_KEY_CREATED,
                 target=prefix, details={"name": name, "scopes": clean, "channel_ids": channels,
                                         "expires_at": expires_at.isoformat() if expires_at else None},
                 now=now)
    return CreatedApiKey(_views(uow, ApiKey.id == key_id)[0], key)


def list_api_keys(uow: UnitOfWork, actor: Actor) -> list[ApiKeyView]:
    """Admins: the organization's keys, newest first (revoked and expired ones too)."""
    me = require(uow, actor, Action.MANAGE_API_KEYS)
    return _views(uow, ApiKey.organization_id == me.organization_id)


def revoke_api_key(uow: UnitOfWork, actor: Actor, api_key_id: int, now: datetime | None = None) -> ApiKeyView:
    """Admins: the key stops working at once (its next request is 401); revoking twice changes nothing."""
    now = now or utcnow()
    me = require(uow, actor, Action.MANAGE_API_KEYS)
    row = uow.session.execute(select(ApiKey.organization_id, ApiKey.prefix, ApiKey.revoked_at)
                              .where(ApiKey.id == api_key_id).with_for_update()).first()
    if row is None or row.organization_id != me.organization_id:
        raise NotFound(f"API key {api_key_id} not found in your organization")
    if row.revoked_at is None:
        uow.session.execute(update(ApiKey).where(ApiKey.id == api_key_id).values(revoked_at=now))
        record_audit(uow, organization_id=me.organization_id, actor_user_id=me.acting_user_id,
                     action=API_KEY_REVOKED, target=row.prefix, details={"api_key_id": api_key_id}, now=now)
    return _views(uow, ApiKey.id == api_key_id)[0]


def api_key_by_prefix(uow: UnitOfWork, actor: Actor, prefix: str) -> ApiKeyView:
    """Admins: the key whose visible prefix is ``prefix`` (the CLI names keys by it)."""
    me = require(uow, actor, Action.MANAGE_API_KEYS)
    found = _views(uow, ApiKey.organization_id == me.organization_id, ApiKey.prefix == prefix.strip())
    if len(found) != 1:
        raise NotFound(f"no single API key with prefix {prefix!r} in your organization (see `api-key list`)")
    return found[0]


def api_key_usage(uow: UnitOfWork, actor: Actor, *, days: int = 30, now: datetime | None = None) -> list[UsageDay]:
    """Admins: requests, messages sent and errors per key per day over the last ``days`` days, newest first."""
    me = require(uow, actor, Action.MANAGE_API_KEYS)
    since = (now or utcnow()).date() - timedelta(days=max(1, days) - 1)
    rows = uow.session.execute(
        select(ApiKeyUsage, ApiKey.prefix).join(ApiKey, ApiKey.id == ApiKeyUsage.api_key_id)
        .where(ApiKey.organization_id == me.organization_id, ApiKeyUsage.day >= since)
        .order_by(ApiKeyUsage.day.desc(), ApiKey.id.desc())).all()
    return [UsageDay(u.api_key_id, prefix, u.day, u.requests, u.messages_sent, u.errors) for u, prefix in rows]


# --- the request path (no actor yet: these find it) ------------------------------------------------

def count_usage(uow: UnitOfWork, api_key_id: int, *, requests: int = 0, messages_sent: int = 0, errors: int = 0,
                now: datetime | None = None) -> None:
    """Add to the key's counters of today (UTC)."""
    ins = pg_insert(ApiKeyUsage).values(api_key_id=api_key_id, day=(now or utcnow()).date(), requests=requests,
                                        messages_sent=messages_sent, errors=errors)
    uow.session.execute(ins.on_conflict_do_update(
        index_elements=[ApiKeyUsage.api_key_id, ApiKeyUsage.day],
        set_={c: getattr(ApiKeyUsage, c) + getattr(ins.excluded, c) for c in ("requests", "messages_sent", "errors")}))


def authenticate(uow: UnitOfWork, key: str | None, now: datetime | None = None) -> KeyCheck:
    """The actor of a bearer key; AuthError for a missing, unknown, revoked or expired key. Counts the
    request (usage, rate-limit window, last use); the caller commits, then refuses a ``retry_after``."""
    now = now or utcnow()
    if not key or not key.strip():
        raise AuthError("an API key is required: send 'Authorization: Bearer <key>'")
    secret_hash = hash_key(key.strip())
    window = now.replace(second=0, microsecond=0)
    # counters only: a crash may lose the last few milliseconds of them, never a message; no WAL flush wait
    uow.session.execute(text("set local synchronous_commit = off"))
    same = ApiKey.window_start == window
    row = uow.session.execute(
        update(ApiKey)
        .where(ApiKey.secret_hash == secret_hash, ApiKey.revoked_at.is_(None),
               (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now))
        .values(last_used_at=now, window_start=window,
                window_requests=case((same, ApiKey.window_requests + 1), else_=1))
        .returning(ApiKey.id, ApiKey.organization_id, ApiKey.prefix, ApiKey.scopes, ApiKey.channel_ids,
                   ApiKey.window_requests, ApiKey.rate_limit_per_minute)).first()
    if row is None:
        why = uow.session.execute(select(ApiKey.revoked_at, ApiKey.expires_at)
                                  .where(ApiKey.secret_hash == secret_hash)).first()
        reason = None if why is None else key_refusal(why.revoked_at, why.expires_at, now)
        raise AuthError(reason or "the API key is not valid")
    count_usage(uow, row.id, requests=1, now=now)
    channels = None if row.channel_ids is None else frozenset(int(c) for c in row.channel_ids)
    actor = Actor.for_api_key(row.id, row.organization_id, row.prefix, frozenset(row.scopes), channels)
    if row.window_requests > row.rate_limit_per_minute:
        return KeyCheck(actor, max(1, math.ceil((window + WINDOW - now).total_seconds())))
    return KeyCheck(actor)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]


def _conflict(idempotency_key: str) -> Conflict:
    return Conflict(f"Idempotency-Key {idempotency_key!r} was already used for a different request; "
                    "use a new key for a new request")


def replayed_response(uow: UnitOfWork, api_key_id: int, idempotency_key: str, request_hash: str
                      ) -> StoredResponse | None:
    """The first answer to this key's request with ``idempotency_key``; Conflict when that request differed."""
    row = uow.session.execute(select(ApiIdempotency.request_hash, ApiIdempotency.status_code, ApiIdempotency.response)
                              .where(ApiIdempotency.api_key_id == api_key_id,
                                     ApiIdempotency.idempotency_key == idempotency_key)).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise _conflict(idempotency_key)
    return StoredResponse(row.status_code, dict(row.response))


def remember_response(uow: UnitOfWork, api_key_id: int, idempotency_key: str, request_hash: str, status_code: int,
                      body: dict[str, Any], now: datetime | None = None) -> StoredResponse:
    """Keep the answer; when a concurrent request with the same key stored one first, that one is the
    answer (or Conflict when its request differed)."""
    inserted = uow.session.execute(pg_insert(ApiIdempotency).values(
        api_key_id=api_key_id, idempotency_key=idempotency_key, request_hash=request_hash, status_code=status_code,
        response=body, created_at=now or utcnow()).on_conflict_do_nothing().returning(ApiIdempotency.api_key_id)
    ).first()
    if inserted is not None:
        return StoredResponse(status_code, body)
    first = replayed_response(uow, api_key_id, idempotency_key, request_hash)
    assert first is not None
    return first


def forget_old_responses(uow: UnitOfWork, now: datetime | None = None) -> int:
    """Drop idempotency records older than 24 hours (maintenance); returns how many."""
    result = uow.session.execute(delete(ApiIdempotency).where(
        ApiIdempotency.created_at < (now or utcnow()) - IDEMPOTENCY_TTL))
    return int(getattr(result, "rowcount", 0) or 0)
