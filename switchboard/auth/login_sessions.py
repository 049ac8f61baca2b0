"""Login sessions (the ``login_sessions`` rows): idle and absolute expiry, and the signed browser cookie.

Not to be confused with a SQLAlchemy session (``uow.session``), a Streamlit session (one browser tab,
``app/signin.py`` keeps the login in it) or an agent's presence (``agent_sessions``). Like every
service, nothing here commits: the caller does (``check_session`` moves the idle deadline).

The browser never holds anything the database can be used to forge: a random 256-bit token whose
SHA-256 is the key of the ``login_sessions`` row. The cookie that restores a login after a browser
refresh carries that token plus an expiry, signed with an HMAC key derived from
``SWITCHBOARD_SECRET_KEY``; it is short-lived (the idle timeout) and re-issued while the user is active.
Every use re-checks the server-side row, so logout, user disable and expiry take effect at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, insert, select, update

from switchboard.auth import audit
from switchboard.clock import utcnow
from switchboard.db.schema import LoginSession, User
from switchboard.errors import AuthError
from switchboard.settings import Settings, get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class SessionToken:
    """A fresh login: ``token`` goes to the browser session, only its hash is stored."""

    token: str
    session_id: int
    actor: Actor
    name: str
    expires_at: datetime  # absolute expiry


@dataclass(frozen=True, slots=True)
class SessionInfo:
    actor: Actor
    name: str
    session_id: int
    expires_at: datetime  # absolute
    idle_expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(
    uow: UnitOfWork,
    user_id: int,
    now: datetime | None = None,
    *,
    user_agent: str | None = None,
    settings: Settings | None = None,
) -> SessionToken:
    """Open a server-side session for an authenticated user (the caller commits)."""
    now = now or utcnow()
    settings = settings or get_settings()
    user = uow.session.get(User, user_id)
    if user is None:
        raise AuthError("unknown user")
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(hours=settings.session_absolute_hours)
    session_id = uow.session.execute(
        insert(LoginSession)
        .values(token_hash=token_hash(token), user_id=user_id, created_at=now, last_seen_at=now,
                expires_at=expires_at, user_agent=user_agent)
        .returning(LoginSession.id)
    ).scalar_one()
    actor = Actor(user.id, user.organization_id, user.role, user.email)  # type: ignore[arg-type]
    return SessionToken(token, int(session_id), actor, user.name, expires_at)


def check_session(
    uow: UnitOfWork, token: str, now: datetime | None = None, *, settings: Settings | None = None
) -> SessionInfo:
    """Validate a session token and mark it used (one indexed UPDATE; commit it); AuthError says why not."""
    now = now or utcnow()
    settings = settings or get_settings()
    idle = timedelta(minutes=settings.session_idle_minutes)
    digest = token_hash(token or "")
    row = uow.session.execute(
        update(LoginSession)
        .where(
            LoginSession.token_hash == digest,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
            LoginSession.last_seen_at > now - idle,
            User.id == LoginSession.user_id,
            User.status == "active",
        )
        .values(last_seen_at=now)
        .returning(LoginSession.id, LoginSession.expires_at, User.id, User.organization_id, User.role,
                   User.email, User.name)
    ).first()
    if row is not None:
        actor = Actor(row[2], row[3], row[4], row[5])
        return SessionInfo(actor, row[6], row[0], row[1], now + idle)
    found = uow.session.execute(
        select(LoginSession.revoked_at, LoginSession.expires_at, LoginSession.last_seen_at, User.status)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.token_hash == digest)
    ).first()
    if found is None:
        raise AuthError("login expired: this session is unknown; sign in again")
    revoked_at, expires_at, last_seen_at, status = found
    if status != "active":
        raise AuthError("account disabled: an admin disabled this account; you were signed out")
    if revoked_at is not None:
        raise AuthError("signed out: this session was ended (logout or an admin action); sign in again")
    if expires_at <= now:
        raise AuthError(f"login expired: sessions last at most {settings.session_absolute_hours} h; "
                        "sign in again")
    raise AuthError(f"login expired after {settings.session_idle_minutes} minutes without activity; "
                    "sign in again")


def validate_session(
    uow: UnitOfWork, token: str, now: datetime | None = None, *, settings: Settings | None = None
) -> Actor:
    """The Actor of a valid session; AuthError (expired / revoked / disabled) otherwise."""
    return check_session(uow, token, now, settings=settings).actor


def revoke_session(uow: UnitOfWork, token: str, now: datetime | None = None) -> bool:
    """Log out one session (idempotent: revoking twice is fine). True if it was active."""
    now = now or utcnow()
    row = uow.session.execute(
        update(LoginSession)
        .where(LoginSession.token_hash == token_hash(token or ""), LoginSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(LoginSession.user_id)
    ).first()
    if row is not None:
        user = uow.session.get(User, row[0])
        if user is not None:
            audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                               action=audit.LOGOUT, target=user.email, now=now)
    return row is not None


def revoke_all_for_user(
    uow: UnitOfWork, user_id: int, now: datetime | None = None, *, except_token: str | None = None,
) -> int:
    """End every open session of a user (logout everywhere, disable, TOTP reset). Returns how many."""
    now = now or utcnow()
    cond = and_(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
    if except_token is not None:
        cond = and_(cond, LoginSession.token_hash != token_hash(except_token))
    count = len(uow.session.execute(
        update(LoginSession).where(cond).values(revoked_at=now).returning(LoginSession.id)
    ).all())
    return count


# --- the browser cookie -------------------------------------------------------------------------
COOKIE_NAME = "sb_session"


def _cookie_key(secret_key: bytes) -> bytes:
    return hashlib.sha256(b"switchboard/session-cookie/v1" + secret_key).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign_cookie(token: str, expires_at: datetime, secret_key: bytes) -> str:
    """``token.expiry.signature``: short-lived, tamper-evident, useless without the server row."""
    payload = f"{token}.{int(expires_at.timestamp())}"
    sig = hmac.new(_cookie_key(secret_key), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(sig)}"


def read_cookie(value: str | None, now: datetime, secret_key: bytes) -> str | None:
    """The session token inside a valid, unexpired cookie, else None."""
    if not value or value.count(".") != 2:
        return None
    token, exp, sig = value.split(".")
    payload = f"{token}.{exp}"
    expected = _b64(hmac.new(_cookie_key(secret_key), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, sig) or not exp.isdigit():
        return None
    if int(exp) <= int(now.timestamp()):
        return None
    return token
