"""Fixtures for auth service tests: an organization, users with known passwords and TOTP secrets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from switchboard.auth.enrollment import confirm_enrollment
from switchboard.auth.login import verify_password_step
from switchboard.auth.totp import code_at
from switchboard.auth.users import create_user
from switchboard.services.organizations import create_organization
from switchboard.settings import Settings, load_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

KEY = bytes(range(32))
PASSWORD = "correct horse battery"
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)  # a step boundary (divisible by 30 s)


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
    with UnitOfWork(engine) as u:
        org_id = create_organization(u, "Acme", "Europe/Berlin")
        u.commit()
        return org_id


@pytest.fixture
def make_user(engine: Engine, org: int, settings: Settings) -> Callable[..., U]:
    def make(email: str = "ana@example.com", role: str = "agent", enrolled: bool = True,
             organization_id: int | None = None) -> U:
        o = organization_id or org
        with UnitOfWork(engine) as u:
            created = create_user(u, o, email=email, name=email.split("@")[0].title(), role=role,
                                  secret_key=KEY, password=PASSWORD)
        if enrolled:
            with UnitOfWork(engine) as u:
                pending = verify_password_step(u, email, PASSWORD, T0 - timedelta(minutes=5), settings=settings)
            with UnitOfWork(engine) as u:
                confirm_enrollment(u, pending, code_at(created.totp_secret, T0 - timedelta(minutes=5)), T0 - timedelta(minutes=5),
                                   secret_key=KEY, settings=settings)
        return U(created.user_id, created.email, created.totp_secret, o, role)
    return make

