"""Two-step login: password, then a TOTP code (or a one-time recovery code), with lockout.

Rules (each refusal raises AuthError whose message names the rule):
- an unknown email and a wrong password get the same message;
- ``settings.lockout_attempts`` failed password/TOTP/recovery attempts in a row lock the account for
  ``settings.lockout_minutes``; the message says until when; a successful login resets the counter;
- a TOTP code is accepted within one 30 s step either side, and a step is never accepted twice
  (``users.totp_last_step``);
- a user without TOTP enrolled gets a PendingLogin with ``needs_enrollment`` and must enroll
  (switchboard.auth.enrollment) before a session exists;
- the password step is valid for ``PENDING_MINUTES``; after that the login expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from switchboard.auth import audit, recovery_codes, totp
from switchboard.auth.login_sessions import SessionToken, create_session
from switchboard.auth.passwords import verify_password
from switchboard.clock import utcnow
from switchboard.db.schema import Organization, User
from switchboard.errors import AuthError
from switchboard.settings import Settings, get_settings
from switchboard.uow import UnitOfWork

PENDING_MINUTES = 10
BAD_CREDENTIALS = "wrong email or password"


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """The password step passed; the second factor (or enrollment) is still due before ``expires_at``."""

    user_id: int
    organization_id: int
    email: str
    name: str
    needs_enrollment: bool
    expires_at: datetime


def _format_until(uow: UnitOfWork, organization_id: int, when: datetime) -> str:
    tz = uow.session.execute(select(Organization.timezone).where(Organization.id == organization_id)).scalar()
    try:
        local = when.astimezone(ZoneInfo(tz or "UTC"))
    except Exception:
        local = when
    return local.strftime("%Y-%m-%d %H:%M %Z")


def _locked_message(uow: UnitOfWork, user: User) -> str:
    assert user.locked_until is not None
    return (f"account locked after too many failed attempts, until "
            f"{_format_until(uow, user.organization_id, user.locked_until)}")


def _user_for_update(uow: UnitOfWork, user_id: int) -> User:
    user = uow.session.execute(select(User).where(User.id == user_id).with_for_update()).scalar_one_or_none()
    if user is None:
        raise AuthError(BAD_CREDENTIALS)
    return user


def _refuse_if_locked(uow: UnitOfWork, user: User, now: datetime) -> None:
    if user.locked_until is not None and user.locked_until > now:
        audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                           action=audit.LOGIN_FAILED, target=user.email,
                           details={"reason": "locked", "locked_until": user.locked_until.isoformat()},
                           now=now)
        uow.commit()
        raise AuthError(_locked_message(uow, user))


def fail_attempt(uow: UnitOfWork, user: User, now: datetime, reason: str, message: str,
                 settings: Settings) -> AuthError:
    """Count a failed attempt (locking the account at the limit), commit, and return the error to raise."""
    attempts = (user.failed_attempts or 0) + 1
    values: dict[str, object] = {"failed_attempts": attempts}
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                       action=audit.LOGIN_FAILED, target=user.email,
                       details={"reason": reason, "attempt": attempts}, now=now)
    locked_until = None
    if attempts >= settings.lockout_attempts:
        locked_until = now + timedelta(minutes=settings.lockout_minutes)
        values.update(failed_attempts=0, locked_until=locked_until)
        audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                           action=audit.LOCKOUT, target=user.email,
                           details={"attempts": attempts, "locked_until": locked_until.isoformat()}, now=now)
    uow.session.execute(update(User).where(User.id == user.id).values(**values))
    uow.commit()
    if locked_until is not None:
        user.locked_until = locked_until
        return AuthError(f"{message}; {_locked_message(uow, user)}")
    left = settings.lockout_attempts - attempts
    return AuthError(f"{message} ({left} attempt{'s' if left != 1 else ''} left before the account is locked)")


def verify_password_step(
    uow: UnitOfWork, email: str, password: str, now: datetime | None = None, *,
    settings: Settings | None = None,
) -> PendingLogin:
    """Step 1. Same refusal for an unknown email and a wrong password; lockout counts wrong passwords."""
    now = now or utcnow()
    settings = settings or get_settings()
    email = (email or "").strip().lower()
    user = uow.session.execute(
        select(User).where(func.lower(User.email) == email).with_for_update()
    ).scalar_one_or_none()
    if user is None or user.password_hash is None:
        verify_password(None, password or "")  # same cost as a real check
        audit.record_audit(uow, organization_id=user.organization_id if user else None,
                           actor_user_id=user.id if user else None, action=audit.LOGIN_FAILED,
                           target=email[:200], details={"reason": "unknown_email" if user is None
                                                        else "no_password"}, now=now)
        uow.commit()
        raise AuthError(BAD_CREDENTIALS)
    _refuse_if_locked(uow, user, now)
    if not verify_password(user.password_hash, password or ""):
        raise fail_attempt(uow, user, now, "wrong_password", BAD_CREDENTIALS, settings)
    if user.status != "active":
        audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                           action=audit.LOGIN_FAILED, target=user.email,
                           details={"reason": f"status_{user.status}"}, now=now)
        uow.commit()
        raise AuthError(f"account {user.status}: ask an admin of your workspace")
    uow.rollback()
    return PendingLogin(user.id, user.organization_id, user.email, user.name, not user.totp_enabled,
                        now + timedelta(minutes=PENDING_MINUTES))


def load_pending_user(uow: UnitOfWork, pending: PendingLogin, now: datetime) -> User:
    """Re-check a PendingLogin under a row lock: not expired, still active, not locked."""
    if pending.expires_at <= now:
        raise AuthError(f"login expired: the second step must follow the password within "
                        f"{PENDING_MINUTES} minutes; sign in again")
    user = _user_for_update(uow, pending.user_id)
    if user.status != "active":
        raise AuthError(f"account {user.status}: ask an admin of your workspace")
    _refuse_if_locked(uow, user, now)
    return user


def check_totp(uow: UnitOfWork, user: User, code: str, now: datetime, secret_key: bytes,
               settings: Settings) -> int:
    """The matching, never-used time step of ``code``; counts failures. The caller stores the step."""
    cleaned = totp.normalize_code(code)
    if user.totp_secret_enc is None:
        raise AuthError("no authenticator is set up for this account; sign in again to enroll")
    secret = totp.decrypt_secret(secret_key, user.id, user.totp_secret_enc)
    step = totp.matching_step(secret, cleaned, now)
    if step is None:
        raise fail_attempt(uow, user, now, "wrong_totp", "wrong TOTP code", settings)
    if user.totp_last_step is not None and step <= user.totp_last_step:
        raise fail_attempt(uow, user, now, "replayed_totp",
                           "replayed TOTP code: this code was already used; wait for the next one", settings)
    return step


def _complete(uow: UnitOfWork, user: User, now: datetime, method: str, settings: Settings,
              user_agent: str | None, extra: dict[str, object] | None = None) -> SessionToken:
    uow.session.execute(update(User).where(User.id == user.id).values(failed_attempts=0, locked_until=None))
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id, action=audit.LOGIN,
                       target=user.email, details={"method": method, **(extra or {})}, now=now)
    token = create_session(uow, user.id, now, user_agent=user_agent, settings=settings)
    uow.commit()
    return token


def verify_totp_step(
    uow: UnitOfWork, pending: PendingLogin, code: str, now: datetime | None = None, *,
    secret_key: bytes | None = None, settings: Settings | None = None, user_agent: str | None = None,
) -> SessionToken:
    """Step 2: a 6-digit code (±1 step, never replayed) opens a server-side session."""
    now = now or utcnow()
    settings = settings or get_settings()
    secret_key = secret_key or settings.secret_key_bytes()
    user = load_pending_user(uow, pending, now)
    if not user.totp_enabled:
        raise AuthError("two-factor enrollment is not finished: scan the QR code and confirm a code first")
    step = check_totp(uow, user, code, now, secret_key, settings)
    uow.session.execute(update(User).where(User.id == user.id).values(totp_last_step=step))
    return _complete(uow, user, now, "totp", settings, user_agent)


def verify_recovery_step(
    uow: UnitOfWork, pending: PendingLogin, code: str, now: datetime | None = None, *,
    settings: Settings | None = None, user_agent: str | None = None,
) -> SessionToken:
    """Step 2 with a one-time recovery code instead of the authenticator (each code works once)."""
    now = now or utcnow()
    settings = settings or get_settings()
    user = load_pending_user(uow, pending, now)
    if not user.totp_enabled:
        raise AuthError("two-factor enrollment is not finished: there are no recovery codes yet")
    if not recovery_codes.use_code(uow, user.id, code, now):
        raise fail_attempt(uow, user, now, "wrong_recovery_code",
                           "wrong or already used recovery code", settings)
    left = recovery_codes.remaining(uow, user.id)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                       action=audit.RECOVERY_CODE_USED, target=user.email, details={"remaining": left},
                       now=now)
    return _complete(uow, user, now, "recovery_code", settings, user_agent, {"recovery_codes_left": left})


def login(
    uow: UnitOfWork, email: str, password: str, code: str, now: datetime | None = None, *,
    secret_key: bytes | None = None, settings: Settings | None = None, user_agent: str | None = None,
) -> PendingLogin | SessionToken:
    """Both steps at once (the login form): a SessionToken, or a PendingLogin needing enrollment."""
    now = now or utcnow()
    pending = verify_password_step(uow, email, password, now, settings=settings)
    if pending.needs_enrollment:
        return pending
    return verify_totp_step(uow, pending, code, now, secret_key=secret_key, settings=settings,
                            user_agent=user_agent)


def login_with_recovery_code(
    uow: UnitOfWork, email: str, password: str, recovery_code: str, now: datetime | None = None, *,
    settings: Settings | None = None, user_agent: str | None = None,
) -> SessionToken:
    """Password plus a one-time recovery code (the recovery page), when the authenticator is lost."""
    now = now or utcnow()
    pending = verify_password_step(uow, email, password, now, settings=settings)
    return verify_recovery_step(uow, pending, recovery_code, now, settings=settings, user_agent=user_agent)
