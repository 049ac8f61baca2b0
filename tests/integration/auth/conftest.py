"""Fixtures for auth service tests: an organization, users with known passwords and TOTP secrets."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import pytest
from sqlalchemy import Engine

from switchboard.auth.enrollment import confirm_enrollment
from switchboard.auth.login import PendingLogin, Refusal, verify_password_step
from switchboard.auth.totp import code_at
from switchboard.auth.users import create_user
from switchboard.services.organizations import create_organization
from switchboard.settings import Settings, load_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

KEY = bytes(range(32))
PASSWORD = "correct horse battery"
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)  # a step boundary (divisible by 30 s)


class Entrypoint(UnitOfWork):
    """One service call the way an entrypoint makes it (app/deps.call, a CLI command): commit when the
    block ends normally, write nothing when it raises. Write ``with pytest.raises(…), Entrypoint(e):``
    so that the exception leaves this block first."""

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        super().__exit__(exc_type, exc, tb)


def refused(result: object) -> str:
    """The text of a sign-in refusal (a returned value: its bookkeeping was committed)."""
    assert isinstance(result, Refusal), result
    return result.message


@dataclass(frozen=True)
class U:
    id: int
    email: str
    secret: str
    org: int
    role: str

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.org, self.role, self.email)  # type: ignore[arg-type]


@pytest.fixture
def settings() -> Settings:
    return load_settings(lockout_attempts=5, lockout_minutes=15, session_idle_minutes=60,
                         session_absolute_hours=12, smtp_host=None)


@pytest.fixture
def uow(engine: Engine) -> Callable[[], UnitOfWork]:
    def make() -> UnitOfWork:
        return UnitOfWork(engine)
    return make


@pytest.fixture
def org(engine: Engine) -> int:
    with Entrypoint(engine) as u:
        return create_organization(u, "Acme", "Europe/Berlin")


@pytest.fixture
def make_user(engine: Engine, org: int, settings: Settings) -> Callable[..., U]:
    def make(email: str = "ana@example.com", role: str = "agent", enrolled: bool = True,
             organization_id: int | None = None) -> U:
        o = organization_id or org
        with Entrypoint(engine) as u:
            created = create_user(u, o, email=email, name=email.split("@")[0].title(), role=role,
                                  secret_key=KEY, password=PASSWORD)
        if enrolled:
            with Entrypoint(engine) as u:
                pending = verify_password_step(u, email, PASSWORD, T0 - timedelta(minutes=5), settings=settings)
            assert isinstance(pending, PendingLogin)
            with Entrypoint(engine) as u:
                confirm_enrollment(u, pending, code_at(created.totp_secret, T0 - timedelta(minutes=5)), T0 - timedelta(minutes=5),
                                   secret_key=KEY, settings=settings)
        return U(created.user_id, created.email, created.totp_secret, o, role)
    return make


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[Any]]]:
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()
