"""Enrollment, recovery-code storage, server-side sessions (idle/absolute/revocation), signed cookie."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import Engine, select

from switchboard.auth.enrollment import EnrollmentResult, begin_enrollment, confirm_enrollment
from switchboard.auth.login import PendingLogin, login, verify_password_step
from switchboard.auth.login_sessions import (
    check_session,
    read_cookie,
    revoke_all_for_user,
    revoke_session,
    sign_cookie,
    validate_session,
)
from switchboard.auth.totp import code_at
from switchboard.db.schema import LoginSession, RecoveryCode, User
from switchboard.errors import AuthError, Conflict
from switchboard.settings import Settings

from .conftest import KEY, PASSWORD, T0, Entrypoint, U, refused


def test_enrollment_activates_only_after_a_correct_code(engine: Engine, make_user: Callable[..., U],
                                                        settings: Settings) -> None:
    user = make_user(enrolled=False)
    with Entrypoint(engine) as u:
        pending = verify_password_step(u, user.email, PASSWORD, T0, settings=settings)
    assert isinstance(pending, PendingLogin)
    with Entrypoint(engine) as u:
        enrollment = begin_enrollment(u, pending, T0, secret_key=KEY)
    secret = enrollment.manual_key.replace(" ", "")
    assert secret == user.secret  # the secret printed by `switchboard user create` stays valid
    assert enrollment.otpauth_uri.startswith("otpauth://totp/Switchboard:ana%40example.com?secret=")
    assert enrollment.qr_png.startswith(b"\x89PNG") and "<svg" in enrollment.qr_svg
    assert pyotp.parse_uri(enrollment.otpauth_uri).secret == secret
    with Entrypoint(engine) as u:
        assert refused(confirm_enrollment(u, pending, "000000" if code_at(secret, T0) != "000000" else "111111",
                                          T0, secret_key=KEY, settings=settings)).startswith("wrong TOTP code (4 ")
    with engine.connect() as con:
        assert con.execute(select(User.totp_enabled).where(User.id == user.id)).scalar() is False
    with Entrypoint(engine) as u:
        result = confirm_enrollment(u, pending, code_at(secret, T0), T0, secret_key=KEY, settings=settings)
    assert isinstance(result, EnrollmentResult)
    assert len(result.recovery_codes) == 10
    with Entrypoint(engine) as u:
        assert validate_session(u, result.session.token, T0, settings=settings).user_id == user.id
    with engine.connect() as con:
        hashes = con.execute(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id)).scalars().all()
        row = con.execute(select(User.totp_enabled, User.totp_last_step).where(User.id == user.id)).one()
    assert len(hashes) == 10 and all(h.startswith("$argon2id$") for h in hashes)
    assert not any(c.replace("-", "") in h for c in result.recovery_codes for h in hashes)
    assert row == (True, int(T0.timestamp()) // 30)
    # the enrollment code's step cannot log in again, and enrolling twice is refused
    with Entrypoint(engine) as u:
        assert refused(login(u, user.email, PASSWORD, code_at(secret, T0), T0, secret_key=KEY, settings=settings))
    with pytest.raises(Conflict, match="already set up"), Entrypoint(engine) as u:
        begin_enrollment(u, pending, T0, secret_key=KEY)


def test_totp_secret_is_encrypted_at_rest(engine: Engine, make_user: Callable[..., U]) -> None:
    user = make_user()
    with engine.connect() as con:
        blob = con.execute(select(User.totp_secret_enc).where(User.id == user.id)).scalar_one()
    assert blob is not None
    assert blob[:2] == b"v1" and user.secret.encode() not in blob


def _session(engine: Engine, user: U, settings: Settings, when: object = T0) -> str:
    with Entrypoint(engine) as u:
        return login(u, user.email, PASSWORD, code_at(user.secret, when), when,  # type: ignore[arg-type]
                     secret_key=KEY, settings=settings).token  # type: ignore[union-attr]


def test_session_idle_expiry_moves_with_activity(engine: Engine, make_user: Callable[..., U],
                                                 settings: Settings) -> None:
    user = make_user()
    token = _session(engine, user, settings)
    with engine.connect() as con:
        stored = con.execute(select(LoginSession.token_hash).order_by(LoginSession.id.desc()).limit(1)).scalar_one()
    assert token not in stored and len(stored) == 64
    t = T0
    for _ in range(3):  # activity every 50 minutes keeps it alive past the 60 min idle limit
        t += timedelta(minutes=50)
        with Entrypoint(engine) as u:
            info = check_session(u, token, t, settings=settings)
        assert info.idle_expires_at == t + timedelta(minutes=60)
    with pytest.raises(AuthError, match="login expired after 60 minutes"), Entrypoint(engine) as u:
        validate_session(u, token, t + timedelta(minutes=61), settings=settings)


def test_session_absolute_expiry(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    user = make_user()
    token = _session(engine, user, settings)
    t = T0
    while t + timedelta(minutes=45) < T0 + timedelta(hours=12):
        t += timedelta(minutes=45)
        with Entrypoint(engine) as u:
            validate_session(u, token, t, settings=settings)
    with pytest.raises(AuthError, match="at most 12 h"), Entrypoint(engine) as u:
        validate_session(u, token, T0 + timedelta(hours=12, minutes=1), settings=settings)


def test_logout_and_revoke_all(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    user = make_user()
    a = _session(engine, user, settings)
    b = _session(engine, user, settings, T0 + timedelta(seconds=30))
    c = _session(engine, user, settings, T0 + timedelta(seconds=60))
    with Entrypoint(engine) as u:
        assert revoke_session(u, a, T0) is True
    with Entrypoint(engine) as u:
        assert revoke_session(u, a, T0) is False  # idempotent
    with pytest.raises(AuthError, match="signed out"), Entrypoint(engine) as u:
        validate_session(u, a, T0 + timedelta(minutes=1), settings=settings)
    with Entrypoint(engine) as u:
        assert revoke_all_for_user(u, user.id, T0, except_token=c) == 2  # b and the enrollment session
    with pytest.raises(AuthError, match="signed out"), Entrypoint(engine) as u:
        validate_session(u, b, T0 + timedelta(minutes=1), settings=settings)
    with Entrypoint(engine) as u:
        validate_session(u, c, T0 + timedelta(minutes=2), settings=settings)
    with pytest.raises(AuthError, match="unknown"), Entrypoint(engine) as u:
        validate_session(u, "forged-token", T0, settings=settings)


def test_signed_cookie() -> None:
    exp = T0 + timedelta(minutes=60)
    value = sign_cookie("tok-en_1", exp, KEY)
    assert read_cookie(value, T0, KEY) == "tok-en_1"
    assert read_cookie(value, exp, KEY) is None  # expired
    assert read_cookie(value, T0, bytes(32)) is None  # other key
    token, stamp, sig = value.split(".")
    assert read_cookie(f"{token}.{int(stamp) + 3600}.{sig}", T0, KEY) is None  # lifetime tampered
    assert read_cookie(f"other.{stamp}.{sig}", T0, KEY) is None
    assert read_cookie("garbage", T0, KEY) is None and read_cookie(None, T0, KEY) is None
