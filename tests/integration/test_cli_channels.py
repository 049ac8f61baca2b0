"""`switchboard org create` with its first admin's invite, and a channel's lifecycle from the CLI
(subprocesses against a real database; a Graph API fake over HTTP for the connection test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from switchboard.db.schema import AuditLog, Channel, Invite, User
from switchboard.uow import UnitOfWork
from tests.fakes.graph import FakeGraph
from tests.fakes.server import run_asgi
from tests.integration.test_cli import run


@pytest.mark.integration
def test_org_create_validates_the_timezone_and_invites_the_first_admin(db_url: str, engine: Engine,
                                                                       tmp_path: Path) -> None:
    r = run(db_url, tmp_path, "org", "create", "Nowhere", "--timezone", "Mars/Olympus")
    assert r.returncode == 2 and "unknown IANA timezone" in r.stderr and "Traceback" not in r.stderr
    r = run(db_url, tmp_path, "org", "create", "Acme", "--timezone", "Europe/Berlin",
            "--admin-email", "Boss@Acme.test", "--admin-name", "Bo Boss")
    assert r.returncode == 0, r.stderr
    assert "organization 'Acme'" in r.stdout and "timezone Europe/Berlin" in r.stdout
    assert "first admin invited: boss@acme.test" in r.stdout and "/invite?token=" in r.stdout
    r = run(db_url, tmp_path, "org", "create", "Acme")
    assert r.returncode == 2 and "already exists" in r.stderr
    with UnitOfWork(engine) as uow:
        user = uow.session.execute(select(User).where(User.email == "boss@acme.test")).scalar_one()
        assert (user.role, user.status, user.name) == ("admin", "invited", "Bo Boss")
        invite = uow.session.execute(select(Invite).where(Invite.user_id == user.id)).scalar_one()
        assert invite.created_by_user_id is None and invite.used_at is None  # made by the operator
        assert set(uow.session.execute(select(AuditLog.action).where(
            AuditLog.organization_id == user.organization_id)).scalars()) == {"user.created", "user.invited"}

    r = run(db_url, tmp_path, "org", "create", "Beta")  # without --admin-email: it says how to add one
    assert r.returncode == 0 and "--admin-email" in r.stdout


@pytest.mark.integration
def test_channel_lifecycle_from_the_cli(db_url: str, engine: Engine, tmp_path: Path) -> None:
    graph = FakeGraph(token="good", account_id="777")
    graph.account_name = "CLI Support"
    with run_asgi(graph.app) as base:
        assert run(db_url, tmp_path, "org", "create", "Solo").returncode == 0
        add = ("channel", "add", "--key", "wa", "--provider", "whatsapp", "--external-id", "777",
               "--credential", "app_secret=s", "--credential", "access_token=old", "--credential", f"api_base_url={base}")
        assert run(db_url, tmp_path, *add).returncode == 0
        assert run(db_url, tmp_path, *add).returncode == 0  # the same channel again: nothing changes

        r = run(db_url, tmp_path, "channel", "add", "--key", "wa", "--provider", "whatsapp",
                "--credential", "access_token=good")
        assert r.returncode == 2 and "channel update wa" in r.stderr and "good" not in r.stderr, r.stderr

        r = run(db_url, tmp_path, "channel", "test", "wa")
        assert r.returncode == 2 and "credentials refused" in r.stdout and "status error" in r.stderr

        r = run(db_url, tmp_path, "channel", "update", "wa", "--credential", "access_token=good",
                "--name", "Front desk", "--rate-limit", "5")
        assert r.returncode == 0, r.stderr
        assert "'Front desk', 5/s, status active" in r.stdout
        r = run(db_url, tmp_path, "channel", "update", "wa")
        assert r.returncode == 2 and "nothing to change" in r.stderr

        r = run(db_url, tmp_path, "channel", "test", "wa")
        assert r.returncode == 0 and "ok: connected as CLI Support (777)" in r.stdout, r.stdout + r.stderr

        for command, status in (("pause", "paused"), ("resume", "active"), ("remove", "removed")):
            r = run(db_url, tmp_path, "channel", command, "wa")
            assert r.returncode == 0 and f"channel wa is {status}" in r.stdout, r.stderr
        r = run(db_url, tmp_path, "channel", "rename", "wa", "Gone")
        assert r.returncode == 2 and "removed" in r.stderr
        r = run(db_url, tmp_path, "channel", "list")
        assert r.returncode == 0 and "removed" in r.stdout and "410" in r.stdout
        r = run(db_url, tmp_path, "channel", "pause", "nope")
        assert r.returncode == 2 and "no channel 'nope'" in r.stderr

    with UnitOfWork(engine) as uow:
        actions = uow.session.execute(select(AuditLog.action).order_by(AuditLog.id)).scalars().all()
        assert uow.session.execute(select(Channel.name)).scalar_one() == "Front desk"
    for action in ("channel.created", "channel.connection_tested", "channel.credentials_refused",
                   "channel.credentials_changed", "channel.renamed", "channel.rate_limit_changed",
                   "channel.paused", "channel.resumed", "channel.removed"):
        assert action in actions, action
