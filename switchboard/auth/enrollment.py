"""TOTP enrollment (mandatory at first login) and recovery codes.

``begin_enrollment`` shows the secret (otpauth URI, QR code, manual key); nothing is activated until
``confirm_enrollment`` receives a correct code, which also returns ten one-time recovery codes (shown
once, stored argon2-hashed) and opens the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update

from switchboard.auth import audit, recovery_codes, totp
from switchboard.auth.login import PendingLogin, Refusal, check_totp, complete, load_pending_user
from switchboard.auth.login_sessions import SessionToken
from switchboard.clock import utcnow
from switchboard.db.schema import User
from switchboard.errors import Conflict
from switchboard.settings import Settings, get_settings
from switchboard.uow import UnitOfWork

WRONG_CODE = "wrong TOTP code"


@dataclass(frozen=True, slots=True)
class Enrollment:
    otpauth_uri: str
    manual_key: str  # grouped by four for typing
    qr_svg: str
    qr_png: bytes


@dataclass(frozen=True, slots=True)
class EnrollmentResult:
    recovery_codes: list[str]
    session: SessionToken


def begin_enrollment(
    uow: UnitOfWork, pending: PendingLogin, now: datetime | None = None, *,
    secret_key: bytes | None = None,
) -> Enrollment:
    """The authenticator setup for a user who has not enrolled yet (keeps an existing unconfirmed secret)."""
    now = now or utcnow()
    secret_key = secret_key or get_settings().secret_key_bytes()
    user = load_pending_user(uow, pending, now)
    if user.totp_enabled:
        raise Conflict("two-factor authentication is already set up for this account; sign in with a code")
    if user.totp_secret_enc is None:
        secret = totp.new_secret()
        uow.session.execute(update(User).where(User.id == user.id)
                            .values(totp_secret_enc=totp.encrypt_secret(secret_key, user.id, secret)))
    else:
        secret = totp.decrypt_secret(secret_key, user.id, user.totp_secret_enc)
    uri = totp.provisioning_uri(secret, user.email)
    qr = totp.qr_code(uri)
    return Enrollment(uri, totp.manual_key(secret), qr.svg, qr.png)


def confirm_enrollment(
    uow: UnitOfWork, pending: PendingLogin, code: str, now: datetime | None = None, *,
    secret_key: bytes | None = None, settings: Settings | None = None, user_agent: str | None = None,
) -> EnrollmentResult | Refusal:
    """Activate TOTP after a correct code: 10 recovery codes (shown once) and the new login session.

    A wrong code is a counted :class:`~switchboard.auth.login.Refusal` (returned: commit it). The
    password was proven already, so this refusal may say that the code was wrong.
    """
    now = now or utcnow()
    settings = settings or get_settings()
    secret_key = secret_key or settings.secret_key_bytes()
    user = load_pending_user(uow, pending, now)
    if user.totp_enabled:
        raise Conflict("two-factor authentication is already set up for this account; sign in with a code")
    step = check_totp(uow, user, code, now, secret_key, settings, WRONG_CODE)
    if isinstance(step, Refusal):
        return step
    uow.session.execute(update(User).where(User.id == user.id).values(totp_enabled=True, totp_last_step=step,
                                                                      updated_at=now))
    codes = recovery_codes.replace_codes(uow, user.id, now)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                       action=audit.TOTP_ENROLLED, target=user.email, now=now)
    session = complete(uow, user, now, "totp_enrollment", settings, user_agent)
    return EnrollmentResult(codes, session)
