"""Login rules: same error for unknown email / wrong password, TOTP window, replay, lockout, recovery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update

from switchboard.auth.login import (
    PendingLogin,
    login,
    login_with_recovery_code,
    verify_password_step,
    verify_recovery_step,
    verify_totp_step,
)
from switchboard.auth.login_sessions import SessionToken
from switchboard.auth.passwords import hash_password
from switchboard.auth.totp import code_at
from switchboard.db.schema import AuditLog, User
from switchboard.errors import AuthError, InvalidInput
from switchboard.settings import Settings
from switchboard.uow import UnitOfWork

from .conftest import KEY, PASSWORD, T0, U


def _audit(engine: Engine) -> list[tuple[str, str | None, dict[str, object]]]:
    with engine.connect() as con:
        return [(r.action, r.target, r.details) for r in con.execute(select(AuditLog).order_by(AuditLog.id))]


def test_unknown_email_and_wrong_password_get_the_same_error(engine: Engine, make_user: Callable[..., U],
                                                             settings: Settings) -> None:
    make_user()
    with UnitOfWork(engine) as u, pytest.raises(AuthError) as unknown:
        verify_password_step(u, "nobody@example.com", PASSWORD, T0, settings=settings)
    with UnitOfWork(engine) as u, pytest.raises(AuthError) as wrong:
        verify_password_step(u, "ana@example.com", "not the password", T0, settings=settings)
    assert str(unknown.value).split(" (")[0] == str(wrong.value).split(" (")[0] == "wrong email or password"
    reasons = [d.get("reason") for a, _, d in _audit(engine) if a == "auth.login_failed"]
    assert reasons == ["unknown_email", "wrong_password"]


def test_password_then_totp_opens_a_session(engine: Engine, make_user: Callable[..., U],
                                            settings: Settings) -> None:
    user = make_user()
    with UnitOfWork(engine) as u:
        pending = verify_password_step(u, " ANA@example.com ", PASSWORD, T0, settings=settings)
    assert isinstance(pending, PendingLogin) and not pending.needs_enrollment
    with UnitOfWork(engine) as u:
        token = verify_totp_step(u, pending, code_at(user.secret, T0), T0, secret_key=KEY, settings=settings)
    assert isinstance(token, SessionToken) and token.actor.user_id == user.id
    assert ("auth.login", user.email, {"method": "totp"}) in _audit(engine)


@pytest.mark.parametrize("offset", [-30, 0, 30])
def test_totp_accepts_one_step_either_side(engine: Engine, make_user: Callable[..., U], settings: Settings,
                                           offset: int) -> None:
    user = make_user()
    code = code_at(user.secret, T0 + timedelta(seconds=offset))
    with UnitOfWork(engine) as u:
        assert isinstance(login(u, user.email, PASSWORD, code, T0, secret_key=KEY, settings=settings),
                          SessionToken)


def test_totp_two_steps_away_is_wrong(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    user = make_user()
    code = code_at(user.secret, T0 - timedelta(seconds=60))
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="wrong TOTP code"):
        login(u, user.email, PASSWORD, code, T0, secret_key=KEY, settings=settings)


def test_a_totp_step_cannot_be_used_twice(engine: Engine, make_user: Callable[..., U],
                                          settings: Settings) -> None:
    user = make_user()
    code = code_at(user.secret, T0)
    with UnitOfWork(engine) as u:
        login(u, user.email, PASSWORD, code, T0, secret_key=KEY, settings=settings)
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="replayed TOTP code"):
        login(u, user.email, PASSWORD, code, T0 + timedelta(seconds=20), secret_key=KEY, settings=settings)
    # an older step (still inside the window) is refused too
    older = code_at(user.secret, T0 - timedelta(seconds=30))
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="replayed TOTP code"):
        login(u, user.email, PASSWORD, older, T0 + timedelta(seconds=5), secret_key=KEY, settings=settings)
    # the next step works
    with UnitOfWork(engine) as u:
        login(u, user.email, PASSWORD, code_at(user.secret, T0 + timedelta(seconds=30)),
              T0 + timedelta(seconds=31), secret_key=KEY, settings=settings)


def test_malformed_code_is_invalid_input_and_not_counted(engine: Engine, make_user: Callable[..., U],
                                                         settings: Settings) -> None:
    user = make_user()
    with UnitOfWork(engine) as u, pytest.raises(InvalidInput, match="6-digit"):
        login(u, user.email, PASSWORD, "12ab", T0, secret_key=KEY, settings=settings)
    with engine.connect() as con:
        assert con.execute(select(User.failed_attempts).where(User.id == user.id)).scalar() == 0


def test_lockout_after_five_failures_says_until_when(engine: Engine, make_user: Callable[..., U],
                                                     settings: Settings) -> None:
    user = make_user()
    for i in range(4):
        with UnitOfWork(engine) as u, pytest.raises(AuthError, match=f"{4 - i} attempt"):
            verify_password_step(u, user.email, "bad password!", T0 + timedelta(seconds=i), settings=settings)
    # the fifth failure is a wrong TOTP code: both kinds count
    with UnitOfWork(engine) as u:
        pending = verify_password_step(u, user.email, PASSWORD, T0 + timedelta(seconds=5), settings=settings)
    with UnitOfWork(engine) as u, pytest.raises(AuthError) as locked:
        verify_totp_step(u, pending, "000000" if code_at(user.secret, T0) != "000000" else "111111",
                         T0 + timedelta(seconds=6), secret_key=KEY, settings=settings)
    # Europe/Berlin is UTC+1 in March: 09:00:06 UTC + 15 min = 10:15 CET
    assert "wrong TOTP code" in str(locked.value)
    assert "account locked after too many failed attempts, until 2026-03-02 10:15 CET" in str(locked.value)
    # even the right password and code are refused while locked
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="account locked .* until 2026-03-02 10:15"):
        login(u, user.email, PASSWORD, code_at(user.secret, T0 + timedelta(minutes=5)),
              T0 + timedelta(minutes=5), secret_key=KEY, settings=settings)
    actions = [a for a, _, _ in _audit(engine)]
    assert actions.count("auth.lockout") == 1
    # after 15 minutes it works again, and the counter is reset by the success
    later = T0 + timedelta(minutes=16)
    with UnitOfWork(engine) as u:
        login(u, user.email, PASSWORD, code_at(user.secret, later), later, secret_key=KEY, settings=settings)
    with engine.connect() as con:
        row = con.execute(select(User.failed_attempts, User.locked_until).where(User.id == user.id)).one()
    assert row == (0, None)


def test_lockout_settings_are_configurable(engine: Engine, make_user: Callable[..., U],
                                           settings: Settings) -> None:
    user = make_user()
    strict = settings.model_copy(update={"lockout_attempts": 2, "lockout_minutes": 60})
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="1 attempt left"):
        verify_password_step(u, user.email, "bad password!", T0, settings=strict)
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="until 2026-03-02 11:00"):
        verify_password_step(u, user.email, "bad password!", T0, settings=strict)


def test_pending_login_expires(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    user = make_user()
    with UnitOfWork(engine) as u:
        pending = verify_password_step(u, user.email, PASSWORD, T0, settings=settings)
    late = T0 + timedelta(minutes=11)
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="login expired"):
        verify_totp_step(u, pending, code_at(user.secret, late), late, secret_key=KEY, settings=settings)


def test_disabled_and_invited_users_cannot_sign_in(engine: Engine, make_user: Callable[..., U],
                                                   settings: Settings) -> None:
    user = make_user()
    with engine.begin() as con:
        con.execute(update(User).where(User.id == user.id).values(status="disabled"))
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="account disabled"):
        verify_password_step(u, user.email, PASSWORD, T0, settings=settings)
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="account disabled"):
        verify_password_step(u, user.email, PASSWORD, T0, settings=settings)
    with engine.begin() as con:
        con.execute(update(User).where(User.id == user.id)
                    .values(status="invited", password_hash=hash_password("another password")))
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="account invited"):
        verify_password_step(u, user.email, "another password", T0, settings=settings)


def test_not_enrolled_user_must_enroll(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    user = make_user(enrolled=False)
    with UnitOfWork(engine) as u:
        result = login(u, user.email, PASSWORD, "", T0, secret_key=KEY, settings=settings)
    assert isinstance(result, PendingLogin) and result.needs_enrollment
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="enrollment is not finished"):
        verify_totp_step(u, result, code_at(user.secret, T0), T0, secret_key=KEY, settings=settings)


def test_recovery_code_works_once(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    from switchboard.auth.enrollment import regenerate_recovery_codes

    user = make_user()
    with UnitOfWork(engine) as u:
        codes = regenerate_recovery_codes(u, user.actor, PASSWORD, T0)
    assert len(codes) == 10 and len(set(codes)) == 10
    with UnitOfWork(engine) as u:
        token = login_with_recovery_code(u, user.email, PASSWORD, codes[3].lower().replace("-", " "), T0,
                                         settings=settings)
    assert token.actor.user_id == user.id
    with UnitOfWork(engine) as u, pytest.raises(AuthError, match="wrong or already used recovery code"):
        login_with_recovery_code(u, user.email, PASSWORD, codes[3], T0, settings=settings)
    with UnitOfWork(engine) as u:
        pending = verify_password_step(u, user.email, PASSWORD, T0, settings=settings)
    with UnitOfWork(engine) as u:
        verify_recovery_step(u, pending, codes[4], T0, settings=settings)
    used = [d for a, _, d in _audit(engine) if a == "auth.recovery_code_used"]
    assert used == [{"remaining": 9}, {"remaining": 8}]
