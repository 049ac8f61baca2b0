"""Sign-in: password, then a TOTP code (or a one-time recovery code), with a lockout per address.

What a refusal reveals (issue 18, docs/security.md): nothing about which addresses have accounts.
A wrong password, an unknown email, a disabled or invited account, a wrong, missing or replayed code
all get the same :data:`REFUSED` text, and the same attempt counter: failures are counted per
submitted address (``signin_attempts``, keyed by the normalised email) whether or not an account
has it, so "N attempts left" and "try again in N minutes" read the same for an unknown address. An
unknown address costs one argon2 verification like a known one (a dummy hash).

Other rules:
- ``settings.lockout_attempts`` failures in a row (within :data:`ATTEMPTS_KEPT`) lock the address for
  ``settings.lockout_minutes``; while locked even the right password is refused; a success clears
  the counter. A lockout of a real account is audited and, when SMTP is configured, mailed to its
  owner (in the background, so the answer takes no longer). An admin can unlock it.
- a TOTP code is accepted within one 30 s step either side, and a step is never accepted twice
  (``users.totp_last_step``);
- a user without TOTP enrolled gets a PendingLogin with ``needs_enrollment`` and must enroll
  (switchboard.auth.enrollment) before a login session exists;
- the password step is valid for ``PENDING_MINUTES``; after that the login expired.

Transactions: like every service, these functions never commit. A refused sign-in must still keep
what it learned (the counter, a lockout, the audit rows), so a refusal is **returned**, not raised:
a :class:`Refusal` value. The entrypoint commits whatever came back — a :class:`SessionToken`, a
:class:`PendingLogin` or a :class:`Refusal` — and then shows it (``app/deps.call`` does exactly that).
Exceptions keep their usual meaning, nothing was written: InvalidInput for a malformed code (checked
before anything else, so it is the same for every address), AuthError for an expired step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.auth import audit, client_throttle, mail, recovery_codes, totp
from switchboard.auth.login_sessions import SessionToken, create_session
from switchboard.auth.passwords import verify_password
from switchboard.clock import utcnow
from switchboard.db.schema import SigninAttempt, User
from switchboard.errors import AuthError
from switchboard.settings import Settings, get_settings
from switchboard.uow import UnitOfWork

PENDING_MINUTES = 10
REFUSED = "wrong email, password or code"
ATTEMPTS_KEPT = timedelta(days=1)  # a failure older than this no longer counts towards a lockout


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused sign-in step; the counter and audit rows written on the way are part of it (commit it)."""

    message: str


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """The password step passed; the second factor (or enrollment) is still due before ``expires_at``."""

    user_id: int
    organization_id: int
    email: str
    name: str
    needs_enrollment: bool
    expires_at: datetime


def address_key(email: str) -> str:
    """The key failures are counted under: the submitted address, trimmed and lower-cased."""
    return (email or "").strip().lower()[:320]


def _minutes_left(until: datetime, now: datetime) -> str:
    minutes = max(1, math.ceil((until - now).total_seconds() / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _locked_message(until: datetime, now: datetime) -> str:
    return (f"too many failed attempts: sign-in with this address is locked; "
            f"try again in {_minutes_left(until, now)}")


def locked_until(uow: UnitOfWork, email: str, now: datetime) -> datetime | None:
    """When the address's lockout ends, if it is locked now."""
    return uow.session.execute(
        select(SigninAttempt.locked_until)
        .where(SigninAttempt.email == address_key(email), SigninAttempt.locked_until > now)
    ).scalar()


def clear_attempts(uow: UnitOfWork, email: str) -> bool:
    """Forget the address's failures and lockout (success, unlock, invite accepted). True if any."""
    return uow.session.execute(
        delete(SigninAttempt).where(SigninAttempt.email == address_key(email)).returning(SigninAttempt.email)
    ).first() is not None


def _audit_failure(uow: UnitOfWork, key: str, user: User | None, now: datetime, **details: object) -> None:
    audit.record_audit(uow, organization_id=user.organization_id if user else None,
                       actor_user_id=user.id if user else None, action=audit.LOGIN_FAILED,
                       target=user.email if user else key[:200], details=details, now=now)


def fail_attempt(uow: UnitOfWork, key: str, user: User | None, now: datetime, reason: str,
                 settings: Settings, message: str = REFUSED) -> Refusal:
    """Count one failure of the address (locking it at the limit) and the refusal to show."""
    uow.session.execute(delete(SigninAttempt).where(
        SigninAttempt.last_failed_at < now - ATTEMPTS_KEPT,
        (SigninAttempt.locked_until.is_(None)) | (SigninAttempt.locked_until <= now)))
    stmt = pg_insert(SigninAttempt).values(email=key, failed_attempts=1, last_failed_at=now)
    attempts = int(uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=[SigninAttempt.email],
            set_={"failed_attempts": SigninAttempt.failed_attempts + 1, "last_failed_at": now})
        .returning(SigninAttempt.failed_attempts)
    ).scalar_one())
    _audit_failure(uow, key, user, now, reason=reason, attempt=attempts)
    if attempts < settings.lockout_attempts:
        left = settings.lockout_attempts - attempts
        return Refusal(f"{message} ({left} attempt{'s' if left != 1 else ''} left before sign-in with "
                       "this address is locked)")
    until = now + timedelta(minutes=settings.lockout_minutes)
    uow.session.execute(update(SigninAttempt).where(SigninAttempt.email == key)
                        .values(failed_attempts=0, locked_until=until))
    if user is not None:
        audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                           action=audit.LOCKOUT, target=user.email,
                           details={"attempts": attempts, "locked_until": until.isoformat()}, now=now)
        if settings.smtp_host:
            mail.send_in_background(settings, mail.lockout_message(
                settings, to=user.email, name=user.name, minutes=settings.lockout_minutes))
    return Refusal(f"{message}; {_locked_message(until, now)}")


def _refuse_locked(uow: UnitOfWork, key: str, user: User | None, until: datetime, now: datetime) -> Refusal:
    _audit_failure(uow, key, user, now, reason="locked", locked_until=until.isoformat())
    return Refusal(_locked_message(until, now))


def _password_failure(user: User | None, matches: bool) -> str | None:
    """Why the password step fails (the audit's reason), or None when it passes."""
    if user is None or user.password_hash is None:
        return "unknown_email" if user is None else "no_password"
    if not matches:
        return "wrong_password"
    if user.status != "active":
        return f"status_{user.status}"
    return None


def verify_password_step(
    uow: UnitOfWork, email: str, password: str, now: datetime | None = None, *,
    settings: Settings | None = None, client_address: str | None = None,
) -> PendingLogin | Refusal:
    """Step 1. Unknown email, wrong password, disabled or invited account: one and the same refusal.
    A client past its free failures (:mod:`switchboard.auth.client_throttle`) waits first, whatever
    address it tries; its failures are counted per client as well as per address."""
    now = now or utcnow()
    settings = settings or get_settings()
    key = address_key(email)
    client = client_throttle.normalise_client(client_address)
    wait = client_throttle.client_wait(uow, client, now)
    if wait > 0:
        _audit_failure(uow, key, None, now, reason="client_throttled", client=client)
        return Refusal(client_throttle.wait_message(wait))
    user = uow.session.execute(select(User).where(func.lower(User.email) == key)).scalar_one_or_none()
    until = locked_until(uow, key, now)
    if until is not None:
        client_throttle.count_client_failure(uow, client, now, settings)
        return _refuse_locked(uow, key, user, until, now)
    matches = verify_password(user.password_hash if user else None, password or "")  # argon2 either way
    reason = _password_failure(user, matches)
    if reason is not None:
        client_throttle.count_client_failure(uow, client, now, settings)
        return fail_attempt(uow, key, user, now, reason, settings)
    assert user is not None
    return PendingLogin(user.id, user.organization_id, user.email, user.name, not user.totp_enabled,
                        now + timedelta(minutes=PENDING_MINUTES))


def load_pending_user(uow: UnitOfWork, pending: PendingLogin, now: datetime) -> User:
    """Re-check a PendingLogin under a row lock: not expired, still active, not locked (AuthError)."""
    if pending.expires_at <= now:
        raise AuthError(f"login expired: the second step must follow the password within "
                        f"{PENDING_MINUTES} minutes; sign in again")
    user = uow.session.execute(
        select(User).where(User.id == pending.user_id).with_for_update()).scalar_one_or_none()
    if user is None or user.status != "active":
        raise AuthError("this account can no longer sign in: ask an admin of your workspace")
    until = locked_until(uow, user.email, now)
    if until is not None:
        raise AuthError(_locked_message(until, now))
    return user


def check_totp(uow: UnitOfWork, user: User, code: str, now: datetime, secret_key: bytes,
               settings: Settings, message: str = REFUSED) -> int | Refusal:
    """The matching, never-used time step of ``code`` (the caller stores it), or the counted refusal."""
    if user.totp_secret_enc is None:
        raise AuthError("no authenticator is set up for this account; sign in again to enroll")
    secret = totp.decrypt_secret(secret_key, user.id, user.totp_secret_enc)
    step = totp.matching_step(secret, totp.normalize_code(code), now) if (code or "").strip() else None
    if step is None:
        return fail_attempt(uow, address_key(user.email), user, now, "wrong_totp", settings, message)
    if user.totp_last_step is not None and step <= user.totp_last_step:
        return fail_attempt(uow, address_key(user.email), user, now, "replayed_totp", settings, message)
    return step


def complete(uow: UnitOfWork, user: User, now: datetime, method: str, settings: Settings,
             user_agent: str | None, extra: dict[str, object] | None = None) -> SessionToken:
    """Both factors passed: clear the address's failures, audit the login, open a login session."""
    clear_attempts(uow, user.email)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id, action=audit.LOGIN,
                       target=user.email, details={"method": method, **(extra or {})}, now=now)
    return create_session(uow, user.id, now, user_agent=user_agent, settings=settings)


def verify_totp_step(
    uow: UnitOfWork, pending: PendingLogin, code: str, now: datetime | None = None, *,
    secret_key: bytes | None = None, settings: Settings | None = None, user_agent: str | None = None,
) -> SessionToken | Refusal:
    """Step 2: a 6-digit code (±1 step, never replayed) opens a server-side login session."""
    now = now or utcnow()
    settings = settings or get_settings()
    secret_key = secret_key or settings.secret_key_bytes()
    user = load_pending_user(uow, pending, now)
    if not user.totp_enabled:
        raise AuthError("two-factor enrollment is not finished: scan the QR code and confirm a code first")
    step = check_totp(uow, user, code, now, secret_key, settings)
    if isinstance(step, Refusal):
        return step
    uow.session.execute(update(User).where(User.id == user.id).values(totp_last_step=step))
    return complete(uow, user, now, "totp", settings, user_agent)


def verify_recovery_step(
    uow: UnitOfWork, pending: PendingLogin, code: str, now: datetime | None = None, *,
    settings: Settings | None = None, user_agent: str | None = None,
) -> SessionToken | Refusal:
    """Step 2 with a one-time recovery code instead of the authenticator (each code works once)."""
    now = now or utcnow()
    settings = settings or get_settings()
    user = load_pending_user(uow, pending, now)
    if not recovery_codes.use_code(uow, user.id, code, now) or not user.totp_enabled:
        return fail_attempt(uow, address_key(user.email), user, now, "wrong_recovery_code", settings)
    left = recovery_codes.remaining(uow, user.id)
    audit.record_audit(uow, organization_id=user.organization_id, actor_user_id=user.id,
                       action=audit.RECOVERY_CODE_USED, target=user.email, details={"remaining": left},
                       now=now)
    return complete(uow, user, now, "recovery_code", settings, user_agent, {"recovery_codes_left": left})


def login(
    uow: UnitOfWork, email: str, password: str, code: str, now: datetime | None = None, *,
    secret_key: bytes | None = None, settings: Settings | None = None, user_agent: str | None = None,
    client_address: str | None = None,
) -> PendingLogin | SessionToken | Refusal:
    """Both steps at once (the sign-in form): a SessionToken, a PendingLogin needing enrollment, or a
    Refusal. An empty code is a wrong code for an enrolled account (first sign-in: leave it empty)."""
    now = now or utcnow()
    if (code or "").strip():
        totp.normalize_code(code)  # a malformed code: InvalidInput, before anything depends on the address
    pending = verify_password_step(uow, email, password, now, settings=settings, client_address=client_address)
    if isinstance(pending, Refusal) or pending.needs_enrollment:
        return pending
    return verify_totp_step(uow, pending, code, now, secret_key=secret_key, settings=settings,
                            user_agent=user_agent)


def login_with_recovery_code(
    uow: UnitOfWork, email: str, password: str, recovery_code: str, now: datetime | None = None, *,
    settings: Settings | None = None, user_agent: str | None = None, client_address: str | None = None,
) -> SessionToken | Refusal:
    """Password plus a one-time recovery code (the recovery page), when the authenticator is lost.

    A refused password costs the same code checks as a refused code, so timing tells neither apart.
    """
    now = now or utcnow()
    pending = verify_password_step(uow, email, password, now, settings=settings, client_address=client_address)
    if isinstance(pending, Refusal):
        recovery_codes.check_like_a_user(recovery_code)
        return pending
    return verify_recovery_step(uow, pending, recovery_code, now, settings=settings, user_agent=user_agent)
