"""Users: create (with TOTP secret), look up."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pyotp
from sqlalchemy import func, insert, select, update

from switchboard.auth.passwords import hash_password
from switchboard.crypto import encrypt
from switchboard.db.schema import ROLES, AuditLog, User
from switchboard.errors import InvalidInput
from switchboard.uow import UnitOfWork

ISSUER = "Switchboard"


@dataclass(frozen=True, slots=True)
class CreatedUser:
    user_id: int
    email: str
    password: str | None  # only when generated
    totp_secret: str
    otpauth_uri: str


def _aad(user_id: int) -> bytes:
    return f"totp:{user_id}".encode()


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
) -> CreatedUser:
    """Create a user with an argon2 password hash and an encrypted TOTP secret (enrolled at first login)."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise InvalidInput(f"{email!r} is not an email address")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if uow.session.execute(select(User.id).where(func.lower(User.email) == email)).first():
        raise InvalidInput(f"a user with email {email} already exists")
    generated = None
    if password is None and status == "active":
        generated = password = secrets.token_urlsafe(12)
    totp_secret = pyotp.random_base32()
    user_id = uow.session.execute(
        insert(User)
        .values(
            organization_id=organization_id,
            email=email,
            name=name,
            role=role,
            status=status,
            password_hash=hash_password(password) if password else None,
        )
        .returning(User.id)
    ).scalar_one()
    uow.session.execute(
        update(User)
        .where(User.id == user_id)
        .values(totp_secret_enc=encrypt(secret_key, totp_secret.encode(), _aad(user_id)))
    )
    uow.session.execute(
        insert(AuditLog).values(organization_id=organization_id, action="user.created", target=email,
                                details={"role": role, "status": status})
    )
    uow.commit()
    uri = pyotp.TOTP(totp_secret).provisioning_uri(name=email, issuer_name=ISSUER)
    return CreatedUser(user_id, email, generated, totp_secret, uri)
