"""Sign-in rules: one refusal for every failure, TOTP window, replay, lockout per address, recovery."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from email import message_from_bytes
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from switchboard.auth.account import regenerate_recovery_codes
from switchboard.auth.login import (
    REFUSED,
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
from switchboard.db.schema import AuditLog, SigninAttempt, User
from switchboard.errors import InvalidInput
from switchboard.settings import Settings

from .conftest import KEY, PASSWORD, T0, Entrypoint, U, refused


def _audit(engine: Engine) -> list[tuple[str, str | None, dict[str, object]]]:
    with engine.connect() as con:
        return [(r.action, r.target, r.details) for r in con.execute(select(AuditLog).order_by(AuditLog.id))]


def _attempts(engine: Engine, email: str) -> tuple[int, object] | None:
    with engine.connect() as con:
        row = con.execute(select(SigninAttempt.failed_attempts, SigninAttempt.locked_until)
                          .where(SigninAttempt.email == email)).first()
    return None if row is None else (row[0], row[1])


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def test_every_failure_gets_the_same_refusal(engine: Engine, make_user: Callable[..., U],
                                             settings: Settings) -> None:
    user = make_user()
    disabled = make_user("dis@example.com")
    with engine.begin() as con:
        con.execute(update(User).where(User.id == disabled.id).values(status="disabled"))
    code = code_at(user.secret, T0)
    answers = {}
    for name, email, password, otp in (
            ("unknown", "nobody@example.com", PASSWORD, code),
            ("wrong password", user.email, "not the password", code),
            ("disabled", disabled.email, PASSWORD, code_at(disabled.secret, T0)),
            ("wrong code", user.email, PASSWORD, _wrong(code)),
            ("missing code", user.email, PASSWORD, "")):
        with Entrypoint(engine) as u:
            answers[name] = refused(login(u, email, password, otp, T0, secret_key=KEY, settings=settings))
    left = f"{REFUSED} ({{}} attempts left before sign-in with this address is locked)"
    # one text for every failure; only the count of the address's failures so far differs
    assert answers == {"unknown": left.format(4), "wrong password": left.format(4), "disabled": left.format(4),
                       "wrong code": left.format(3), "missing code": left.format(2)}
    reasons = [d.get("reason") for a, _, d in _audit(engine) if a == "auth.login_failed"]
    assert reasons == ["unknown_email", "wrong_password", "status_disabled", "wrong_totp", "wrong_totp"]
    assert _attempts(engine, "nobody@example.com") == (1, None)
    assert _attempts(engine, user.email) == (3, None)


def test_a_malformed_code_is_refused_before_the_address_matters(engine: Engine, make_user: Callable[..., U],
                                                                 settings: Settings) -> None:
    user = make_user()
    for email in (user.email, "nobody@example.com"):
        with pytest.raises(InvalidInput, match="6-digit"), Entrypoint(engine) as u:
            login(u, email, PASSWORD, "12ab", T0, secret_key=KEY, settings=settings)
    assert _attempts(engine, user.email) is None and _attempts(engine, "nobody@example.com") is None


def test_password_then_totp_opens_a_session(engine: Engine, make_user: Callable[..., U],
                                            settings: Settings) -> None:
    user = make_user()
    with Entrypoint(engine) as u:
        pending = verify_password_step(u, " ANA@example.com ", PASSWORD, T0, settings=settings)
    assert isinstance(pending, PendingLogin) and not pending.needs_enrollment
    with Entrypoint(engine) as u:
        token = verify_totp_step(u, pending, code_at(user.secret, T0), T0, secret_key=KEY, settings=settings)
    assert isinstance(token, SessionToken) and token.actor.user_id == user.id
    assert ("auth.login", user.email, {"method": "totp"}) in _audit(engine)


@pytest.mark.parametrize("offset", [-30, 0, 30])
def test_totp_accepts_one_step_either_side(engine: Engine, make_user: Callable[..., U], settings: Settings,
                                           offset: int) -> None:
    user = make_user()
    code = code_at(user.secret, T0 + timedelta(seconds=offset))
    with Entrypoint(engine) as u:
        assert isinstance(login(u, user.email, PASSWORD, code, T0, secret_key=KEY, settings=settings),
                          SessionToken)


def test_totp_two_steps_away_is_wrong(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    user = make_user()
    code = code_at(user.secret, T0 - timedelta(seconds=60))
    with Entrypoint(engine) as u:
        assert refused(login(u, user.email, PASSWORD, code, T0, secret_key=KEY, settings=settings)) \
            .startswith(REFUSED)
    assert [d["reason"] for a, _, d in _audit(engine) if a == "auth.login_failed"] == ["wrong_totp"]


def test_a_totp_step_cannot_be_used_twice(engine: Engine, make_user: Callable[..., U],
                                          settings: Settings) -> None:
    user = make_user()
    code = code_at(user.secret, T0)
    with Entrypoint(engine) as u:
        assert isinstance(login(u, user.email, PASSWORD, code, T0, secret_key=KEY, settings=settings),
                          SessionToken)
    with Entrypoint(engine) as u:
        assert refused(login(u, user.email, PASSWORD, code, T0 + timedelta(seconds=20), secret_key=KEY,
                             settings=settings)).startswith(REFUSED)
    # an older step (still inside the window) is refused too
    older = code_at(user.secret, T0 - timedelta(seconds=30))
    with Entrypoint(engine) as u:
        refused(login(u, user.email, PASSWORD, older, T0 + timedelta(seconds=5), secret_key=KEY,
                      settings=settings))
    assert [d["reason"] for a, _, d in _audit(engine) if a == "auth.login_failed"] == ["replayed_totp"] * 2
    # the next step works
    with Entrypoint(engine) as u:
        assert isinstance(login(u, user.email, PASSWORD, code_at(user.secret, T0 + timedelta(seconds=30)),
                                T0 + timedelta(seconds=31), secret_key=KEY, settings=settings), SessionToken)


def test_lockout_after_five_failures_says_for_how_long(engine: Engine, make_user: Callable[..., U],
                                                       settings: Settings) -> None:
    user = make_user()
    for i in range(4):
        with Entrypoint(engine) as u:
            assert f"({4 - i} attempt" in refused(
                verify_password_step(u, user.email, "bad password!", T0 + timedelta(seconds=i), settings=settings))
    # the fifth failure is a wrong TOTP code: both kinds count
    with Entrypoint(engine) as u:
        pending = verify_password_step(u, user.email, PASSWORD, T0 + timedelta(seconds=5), settings=settings)
    assert isinstance(pending, PendingLogin)
    with Entrypoint(engine) as u:
        locked = refused(verify_totp_step(u, pending, _wrong(code_at(user.secret, T0)),
                                          T0 + timedelta(seconds=6), secret_key=KEY, settings=settings))
    assert locked == (f"{REFUSED}; too many failed attempts: sign-in with this address is locked; "
                      "try again in 15 minutes")
    # even the right password and code are refused while locked
    with Entrypoint(engine) as u:
        assert refused(login(u, user.email, PASSWORD, code_at(user.secret, T0 + timedelta(minutes=5)),
                             T0 + timedelta(minutes=5), secret_key=KEY, settings=settings)) == \
            "too many failed attempts: sign-in with this address is locked; try again in 11 minutes"
    actions = [a for a, _, _ in _audit(engine)]
    assert actions.count("auth.lockout") == 1
    # after 15 minutes it works again, and the counter is reset by the success
    later = T0 + timedelta(minutes=16)
    with Entrypoint(engine) as u:
        assert isinstance(login(u, user.email, PASSWORD, code_at(user.secret, later), later, secret_key=KEY,
                                settings=settings), SessionToken)
    assert _attempts(engine, user.email) is None


def test_an_unknown_address_is_counted_and_locked_like_a_real_one(engine: Engine, make_user: Callable[..., U],
                                                                  settings: Settings) -> None:
    user = make_user()
    for i in range(6):
        when = T0 + timedelta(seconds=i)
        with Entrypoint(engine) as u:
            known = refused(login(u, user.email, "bad password!", "", when, secret_key=KEY, settings=settings))
        with Entrypoint(engine) as u:
            unknown = refused(login(u, "Nobody@Example.com ", "bad password!", "", when, secret_key=KEY,
                                    settings=settings))
        assert known == unknown
    assert "try again in 15 minutes" in known
    assert _attempts(engine, "nobody@example.com") == _attempts(engine, user.email)
    lockouts = [(t, d["attempts"]) for a, t, d in _audit(engine) if a == "auth.lockout"]
    assert lockouts == [(user.email, 5)]  # the real account's owner is told; the unknown address has none


def test_lockout_settings_are_configurable(engine: Engine, make_user: Callable[..., U],
                                           settings: Settings) -> None:
    user = make_user()
    strict = settings.model_copy(update={"lockout_attempts": 2, "lockout_minutes": 60})
    with Entrypoint(engine) as u:
        assert "1 attempt left" in refused(verify_password_step(u, user.email, "bad password!", T0, settings=strict))
    with Entrypoint(engine) as u:
        assert refused(verify_password_step(u, user.email, "bad password!", T0, settings=strict)) \
            .endswith("try again in 60 minutes")


def test_old_failures_are_forgotten(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    user = make_user()
    for i in range(4):
        with Entrypoint(engine) as u:
            refused(verify_password_step(u, user.email, "bad password!", T0 + timedelta(minutes=i),
                                         settings=settings))
    next_day = T0 + timedelta(days=1, minutes=5)
    with Entrypoint(engine) as u:
        assert "(4 attempts left" in refused(verify_password_step(u, user.email, "bad password!", next_day,
                                                                  settings=settings))


def test_pending_login_expires(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    from switchboard.errors import AuthError

    user = make_user()
    with Entrypoint(engine) as u:
        pending = verify_password_step(u, user.email, PASSWORD, T0, settings=settings)
    assert isinstance(pending, PendingLogin)
    late = T0 + timedelta(minutes=11)
    with pytest.raises(AuthError, match="login expired"), Entrypoint(engine) as u:
        verify_totp_step(u, pending, code_at(user.secret, late), late, secret_key=KEY, settings=settings)


def test_disabled_and_invited_users_cannot_sign_in(engine: Engine, make_user: Callable[..., U],
                                                   settings: Settings) -> None:
    user = make_user()
    with engine.begin() as con:
        con.execute(update(User).where(User.id == user.id).values(status="disabled"))
    with Entrypoint(engine) as u:
        assert refused(verify_password_step(u, user.email, PASSWORD, T0, settings=settings)).startswith(REFUSED)
    with engine.begin() as con:
        con.execute(update(User).where(User.id == user.id)
                    .values(status="invited", password_hash=hash_password("another password")))
    with Entrypoint(engine) as u:
        assert refused(verify_password_step(u, user.email, "another password", T0, settings=settings)) \
            .startswith(REFUSED)
    reasons = [d.get("reason") for a, _, d in _audit(engine) if a == "auth.login_failed"]
    assert reasons == ["status_disabled", "status_invited"]


def test_not_enrolled_user_must_enroll(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    from switchboard.errors import AuthError

    user = make_user(enrolled=False)
    with Entrypoint(engine) as u:
        result = login(u, user.email, PASSWORD, "", T0, secret_key=KEY, settings=settings)
    assert isinstance(result, PendingLogin) and result.needs_enrollment
    with pytest.raises(AuthError, match="enrollment is not finished"), Entrypoint(engine) as u:
        verify_totp_step(u, result, code_at(user.secret, T0), T0, secret_key=KEY, settings=settings)


def test_recovery_code_works_once(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    user = make_user()
    with Entrypoint(engine) as u:
        codes = regenerate_recovery_codes(u, user.actor, PASSWORD, T0)
    assert len(codes) == 10 and len(set(codes)) == 10
    with Entrypoint(engine) as u:
        token = login_with_recovery_code(u, user.email, PASSWORD, codes[3].lower().replace("-", " "), T0,
                                         settings=settings)
    assert isinstance(token, SessionToken) and token.actor.user_id == user.id
    with Entrypoint(engine) as u:
        again = refused(login_with_recovery_code(u, user.email, PASSWORD, codes[3], T0, settings=settings))
    with Entrypoint(engine) as u:
        unknown = refused(login_with_recovery_code(u, "nobody@example.com", PASSWORD, codes[3], T0,
                                                   settings=settings))
    assert again == unknown == f"{REFUSED} (4 attempts left before sign-in with this address is locked)"
    with Entrypoint(engine) as u:
        pending = verify_password_step(u, user.email, PASSWORD, T0, settings=settings)
    assert isinstance(pending, PendingLogin)
    with Entrypoint(engine) as u:
        assert isinstance(verify_recovery_step(u, pending, codes[4], T0, settings=settings), SessionToken)
    used = [d for a, _, d in _audit(engine) if a == "auth.recovery_code_used"]
    assert used == [{"remaining": 9}, {"remaining": 8}]


def test_a_lockout_is_mailed_to_the_owner(engine: Engine, make_user: Callable[..., U], settings: Settings,
                                          smtp_server: tuple[int, list[Any]]) -> None:
    port, received = smtp_server
    user = make_user()
    smtp = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_from": "inbox@acme.test"})
    for email in ("nobody@example.com", user.email):  # the real account last: its notice is the first mail
        for _ in range(5):
            with Entrypoint(engine) as u:
                refused(verify_password_step(u, email, "bad password!", T0, settings=smtp))
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.rcpt_tos for m in received] == [[user.email]]
    payload = message_from_bytes(received[0].content).get_payload(decode=True)
    assert isinstance(payload, bytes) and "locked for 15 minutes" in payload.decode()
