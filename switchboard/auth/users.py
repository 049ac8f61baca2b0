"""Users: create (with an encrypted TOTP secret, enrolled at first login), look up, list."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, insert, select, update

from switchboard.auth import audit, totp
from switchboard.auth.passwords import hash_password
from switchboard.db.schema import ROLES, USER_STATUSES, SigninAttempt, User
from switchboard.errors import InvalidInput, NotFound
from switchboard.uow import UnitOfWork

ISSUER = totp.ISSUER


@dataclass(frozen=True, slots=True)
class CreatedUser:
    user_id: int
    email: str
    password: str | None  # only when generated
    totp_secret: str
    otpauth_uri: str


@dataclass(frozen=True, slots=True)
class UserView:
    id: int
    organization_id: int
    email: str
    name: str
    role: str
    status: str
    totp_enabled: bool
    locked_until: datetime | None
    failed_attempts: int
    created_at: datetime


def user_views(uow: UnitOfWork, *where: ColumnElement[bool]) -> list[UserView]:
    """Users matching ``where`` (by name), with their address's sign-in failures and lockout."""
    rows = uow.session.execute(
        select(User, SigninAttempt.failed_attempts, SigninAttempt.locked_until)
        .outerjoin(SigninAttempt, SigninAttempt.email == func.lower(User.email))
        .where(*where).order_by(User.name, User.id)
    ).all()
    return [UserView(u.id, u.organization_id, u.email, u.name, u.role, u.status, bool(u.totp_enabled),
                     locked, failed or 0, u.created_at) for u, failed, locked in rows]


def user_view(uow: UnitOfWork, user_id: int) -> UserView:
    views = user_views(uow, User.id == user_id)
    if not views:
        raise NotFound(f"user {user_id} does not exist")
    return views[0]


def normalize_email(email: str) -> str:
    email = (email or "").strip().lower()
    local, _, domain = email.partition("@")
    if not local or not domain or "@" in domain or " " in email or len(email) > 320:
        raise InvalidInput(f"{email!r} is not an email address")
    return email


def create_user(
    uow: UnitOfWork,
    organization_id: int,
    *,
    email: str,
    name: str,
    role: str,
    secret_key: bytes,
    password: str | None = None,
    status: str = "active",
    actor_user_id: int | None = None,
) -> CreatedUser:
    """Create a user with an argon2 password hash and an encrypted TOTP secret (enrolled at first login).

    With ``status="active"`` and no password, a random one is generated and returned once.
    """
    email = normalize_email(email)
    name = (name or "").strip() or email.split("@")[0]
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if status not in USER_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(USER_STATUSES)}")
    if uow.session.execute(select(User.id).where(func.lower(User.email) == email)).first():
        raise InvalidInput(f"a user with email {email} already exists")
    generated = None
    if password is None and status == "active":
        generated = password = secrets.token_urlsafe(12)
    password_hash = hash_password(password) if password else None
    totp_secret = totp.new_secret()
    user_id = uow.session.execute(
        insert(User)
        .values(organization_id=organization_id, email=email, name=name[:200], role=role, status=status,
                password_hash=password_hash)
        .returning(User.id)
    ).scalar_one()
    uow.session.execute(
        update(User).where(User.id == user_id)
        .values(totp_secret_enc=totp.encrypt_secret(secret_key, user_id, totp_secret))
    )
    audit.record_audit(uow, organization_id=organization_id, actor_user_id=actor_user_id,
                       action=audit.USER_CREATED, target=email, details={"role": role, "status": status})
    return CreatedUser(user_id, email, generated, totp_secret, totp.provisioning_uri(totp_secret, email))


def current_totp_code(uow: UnitOfWork, email: str, secret_key: bytes, now: datetime | None = None) -> str:
    """The user's TOTP code right now — an operator aid for the demo and tests (`switchboard totp-code`)."""
    from switchboard.auth.totp import code_at, decrypt_secret
    from switchboard.clock import utcnow
    from switchboard.errors import NotFound

    row = uow.session.execute(
        select(User.id, User.totp_secret_enc).where(User.email == normalize_email(email))
    ).first()
    if row is None or row.totp_secret_enc is None:
        raise NotFound(f"no user {email} with a TOTP secret")
    return code_at(decrypt_secret(secret_key, row.id, row.totp_secret_enc), now or utcnow())
