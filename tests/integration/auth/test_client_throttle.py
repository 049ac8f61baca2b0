"""Sign-in throttling per client address, across accounts (issue 14): a password-spraying client waits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, select

from switchboard.auth.login import PendingLogin, login, verify_password_step
from switchboard.auth.login_sessions import SessionToken
from switchboard.auth.totp import code_at
from switchboard.db.schema import AuditLog
from switchboard.settings import Settings

from .conftest import KEY, PASSWORD, T0, Entrypoint, U, refused

SPRAYER = "203.0.113.7"
NEIGHBOUR = "198.51.100.20"


def _spray(engine: Engine, settings: Settings, count: int, client: str = SPRAYER, start: int = 0) -> list[str]:
    """``count`` wrong passwords, each on a different address, one second apart."""
    out = []
    for i in range(start, start + count):
        with Entrypoint(engine) as u:
            out.append(refused(verify_password_step(u, f"victim{i}@example.com", "Summer2026!",
                                                    T0 + timedelta(seconds=i), settings=settings,
                                                    client_address=client)))
    return out


def test_a_client_spraying_many_addresses_waits_longer_and_longer(engine: Engine, make_user: Callable[..., U],
                                                                   settings: Settings) -> None:
    user = make_user()
    free = settings.model_copy(update={"client_free_attempts": 3, "client_max_wait_seconds": 60})
    answers = _spray(engine, free, 3)  # free: each address just has its own counter
    assert all("attempts left" in a for a in answers)
    # the 4th failure is counted and sets a 1 s wait; the next attempt within it is not even looked at,
    # whatever the address, even with the right password
    _spray(engine, free, 1, start=3)
    with Entrypoint(engine) as u:
        waiting = refused(verify_password_step(u, user.email, PASSWORD, T0 + timedelta(seconds=3.5),
                                               settings=free, client_address=SPRAYER))
    assert waiting == "too many failed sign-ins from your network; try again in 1 second"
    # a neighbour on another address is not slowed down
    with Entrypoint(engine) as u:
        assert isinstance(verify_password_step(u, user.email, PASSWORD, T0 + timedelta(seconds=3.5),
                                               settings=free, client_address=NEIGHBOUR), PendingLogin)
    # each further failure doubles the wait: 2 s, 4 s, 8 s
    waits = []
    at = T0 + timedelta(seconds=10)
    for n in range(3):
        with Entrypoint(engine) as u:
            refused(verify_password_step(u, f"other{n}@example.com", "x", at, settings=free, client_address=SPRAYER))
        with Entrypoint(engine) as u:
            waits.append(refused(verify_password_step(u, "any@example.com", "x", at, settings=free,
                                                      client_address=SPRAYER)))
        at += timedelta(seconds=2 ** (n + 1))
    assert [w.rsplit(" ", 2)[-2] for w in waits] == ["2", "4", "8"]
    with Entrypoint(engine) as u:
        reasons = [r.details.get("reason") for r in u.session.execute(select(AuditLog)).scalars()]
    assert reasons.count("client_throttled") == 4


def test_the_wait_reads_the_same_for_known_and_unknown_addresses(engine: Engine, make_user: Callable[..., U],
                                                                 settings: Settings) -> None:
    user = make_user()
    strict = settings.model_copy(update={"client_free_attempts": 1})
    _spray(engine, strict, 2)
    at = T0 + timedelta(seconds=1.5)
    with Entrypoint(engine) as u:
        known = refused(login(u, user.email, PASSWORD, code_at(user.secret, at), at, secret_key=KEY,
                              settings=strict, client_address=SPRAYER))
    with Entrypoint(engine) as u:
        unknown = refused(login(u, "nobody@example.com", "x", "", at, secret_key=KEY, settings=strict,
                                client_address=SPRAYER))
    assert known == unknown


def test_the_wait_is_capped_and_the_counter_forgotten_after_an_hour(engine: Engine, make_user: Callable[..., U],
                                                                    settings: Settings) -> None:
    user = make_user()
    capped = settings.model_copy(update={"client_free_attempts": 1, "client_max_wait_seconds": 5})
    at = T0
    for i in range(8):
        with Entrypoint(engine) as u:
            refused(verify_password_step(u, f"v{i}@example.com", "x", at, settings=capped, client_address=SPRAYER))
        at += timedelta(seconds=5)  # always waited out: each failure counts
    with Entrypoint(engine) as u:
        assert refused(verify_password_step(u, "v@example.com", "x", at - timedelta(seconds=4), settings=capped,
                                            client_address=SPRAYER)).endswith("try again in 4 seconds")
    later = at + timedelta(hours=1, seconds=1)
    with Entrypoint(engine) as u:
        assert isinstance(login(u, user.email, PASSWORD, code_at(user.secret, later), later, secret_key=KEY,
                                settings=capped, client_address=SPRAYER), SessionToken)
    with Entrypoint(engine) as u:  # a new window: the first failure is free again
        assert "attempts left" in refused(verify_password_step(u, "w@example.com", "x", later, settings=capped,
                                                               client_address=SPRAYER))


def test_without_a_client_address_only_the_address_lockout_applies(engine: Engine, make_user: Callable[..., U],
                                                                    settings: Settings) -> None:
    make_user()
    strict = settings.model_copy(update={"client_free_attempts": 1})
    answers = _spray(engine, strict, 5, client="")
    assert all("attempts left" in a for a in answers)
