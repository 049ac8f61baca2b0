"""Two organizations with channels, deliveries, failures, dead letters and flow runs: every page, CLI
listing and service read shows each organization only its own, in both directions; the operator's
`switchboard status` shows the whole installation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select
from streamlit.testing.v1 import AppTest

from switchboard.auth.users import create_user
from switchboard.db.schema import Conversation, WebhookEvent
from switchboard.services import channel_lifecycle as lifecycle
from switchboard.services import conversations, operations, outbox, runs, webhooks
from switchboard.services.channels import create_channel, credentials_refused, organization_channels
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from tests.e2e.test_pages_apptest import _main
from tests.helpers import lease, login_apptest
from tests.integration.services.conftest import at
from tests.integration.test_cli import run

NAMES = ("North", "South")


@dataclass
class Org:
    name: str
    id: int
    admin: Actor
    admin_id: int
    channel_id: int
    backlog: int

    @property
    def secret(self) -> str:
        """Appears in this organization's rows only (names, errors, bodies): a leak shows it."""
        return f"{self.name}-Secret"


def _organization(engine: Engine, name: str, backlog: int) -> Org:
    key = get_settings().secret_key_bytes()
    secret = f"{name}-Secret"
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, name)
        system = Actor.system(org)
        ch = create_channel(uow, system, key=f"{name.lower()}-wa", provider="whatsapp", name=f"{secret} WhatsApp",
                            secret_key=key, external_id=f"{len(name)}00{backlog}")
        create_channel(uow, system, key=f"{name.lower()}-ig", provider="instagram", name=f"{secret} Instagram",
                       secret_key=key)
        admin_id = create_user(uow, org, email=f"admin@{name.lower()}.test", name=f"{secret} Admin", role="admin",
                               secret_key=key, password="long enough password").user_id
        uow.commit()
    admin = Actor(admin_id, org, "admin", f"admin@{name.lower()}.test")
    with UnitOfWork(engine) as uow:
        ingest_items(uow, channel_id=ch.id, now=at(0), items=[InboundMessage(
            f"wamid.{name}", ContactRef(f"49{backlog}", display_name=f"{secret} Customer"), at(0), f"{secret} hello")])
        uow.commit()
    with UnitOfWork(engine) as uow:
        conv = uow.session.execute(select(Conversation.id).where(Conversation.organization_id == org)).scalar_one()
        conversations.accept(uow, admin, conv, now=at(1))
        msg = outbox.enqueue_reply(uow, admin, conv, f"{secret} reply", idempotency_key=f"k-{name}", now=at(1))
        uow.commit()
    with UnitOfWork(engine) as uow:
        outbox.record_failure(uow, msg.id, token=lease(uow, msg.id, at(2)), error_code="131047", error_message=f"{secret} refused", retryable=False,
                              now=at(2))
        for _ in range(backlog):
            uow.session.execute(insert(WebhookEvent).values(channel_id=ch.id, provider="whatsapp", body=b"{}",
                                                            status="RECEIVED"))
        uow.session.execute(insert(WebhookEvent).values(channel_id=ch.id, provider="whatsapp", status="FAILED",
                                                        body=f'{{"x": "{secret} body"}}'.encode(), reason=f"{secret}"))
        credentials_refused(uow, ch.id, f"authentication failed: {secret} token expired")
        run_id = runs.start_run(uow, f"telegram-sync:{ch.id}", channel_id=ch.id)
        runs.finish_run(uow, run_id, ok=False, error=f"{secret} sync failed")
        wide = runs.start_run(uow, "send-outbox")
        runs.finish_run(uow, wide, ok=False, error=f"{secret} in an installation-wide run",
                        detail={"errors": [f"{secret}"]})
        uow.commit()
    return Org(name, org, admin, admin_id, ch.id, backlog)


@pytest.fixture
def orgs(engine: Engine) -> dict[str, Org]:
    return {name: _organization(engine, name, backlog) for name, backlog in zip(NAMES, (2, 5), strict=True)}


def _other(orgs: dict[str, Org], name: str) -> Org:
    return next(o for n, o in orgs.items() if n != name)


def test_service_reads_show_only_the_viewers_organization(engine: Engine, orgs: dict[str, Org]) -> None:
    for name, org in orgs.items():
        other = _other(orgs, name)
        with UnitOfWork(engine) as uow:
            ov = operations.overview(uow, org.admin)
            reads: list[Any] = [
                ov, lifecycle.all_channels(uow, org.admin), lifecycle.credential_warnings(uow, org.admin),
                organization_channels(uow, org.admin), webhooks.list_events(uow, org.id),
                outbox.list_dead_letters(uow, org.admin),
            ]
        shown = repr(reads)
        assert other.secret not in shown, name
        assert org.secret in shown  # the test is not vacuous: its own rows are there
        assert ov.webhook_backlog == org.backlog
        assert {c.organization_id for c in ov.channels} == {org.id}
        assert len(ov.problem_deliveries) == 1 and len(ov.dead_letters) == 1
        own = [r for r in ov.last_runs if r.organization_id == org.id]
        assert [r.error for r in own] == [f"{org.secret} sync failed"]
        wide = [r for r in ov.last_runs if r.organization_id is None]
        assert [(r.name, r.error, r.detail) for r in wide] == [("send-outbox", runs.INSTALLATION_WIDE, {})]
        assert all(r.organization_id in (None, org.id) for r in ov.failed_runs)
        with UnitOfWork(engine) as uow:
            warnings = lifecycle.credential_warnings(uow, org.admin)
        assert [w.channel_key for w in warnings] == [f"{name.lower()}-wa"]


def test_the_operator_status_shows_the_whole_installation(engine: Engine, orgs: dict[str, Org]) -> None:
    with UnitOfWork(engine) as uow:
        st = operations.installation_status(uow)
    assert [o.name for o in st.organizations] == list(NAMES)
    assert st.webhook_backlog == 7 and st.dead_letters == 2
    assert {o.name: o.channels for o in st.organizations} == {n: {"active": 1, "error": 1} for n in NAMES}
    assert all(o.secret in repr(st.failed_runs) for o in orgs.values())  # details: for the operator


def _admin_page() -> None:
    from app.views import admin_channels

    admin_channels.page()


def _everything_shown(at: AppTest) -> str:
    parts: list[Any] = [e.value for kind in ("title", "text", "caption", "markdown", "info", "warning", "error",
                                            "success", "code") for e in getattr(at, kind)]
    parts += [d.value.to_string() for d in at.dataframe]
    parts += [o for s in at.selectbox for o in s.options]
    return "\n".join(str(p) for p in parts)


@pytest.mark.usefixtures("app_env")
def test_pages_show_only_the_viewers_organization(engine: Engine, orgs: dict[str, Org]) -> None:
    from streamlit.util import calc_hash

    for name, org in orgs.items():
        other = _other(orgs, name)
        at = login_apptest(AppTest.from_function(_admin_page, default_timeout=30), engine, org.admin_id)
        at.run()
        assert not at.exception, at.exception
        shown = _everything_shown(at)
        assert org.secret in shown and other.secret not in shown, name
        assert f"{org.backlog} deliveries waiting" in shown

        # every page the admin is offered, through the app's navigation, with the credentials banner
        for path in ("inbox", "assignment", "channels", "organization", "admin-users", "audit-log", "account"):
            at = login_apptest(AppTest.from_function(_main, default_timeout=30), engine, org.admin_id)
            at.run()
            at._page_hash = calc_hash(path)
            at.run()
            assert not at.exception, (path, at.exception)
            shown = _everything_shown(at)
            assert other.secret not in shown, (name, path)
            assert any(f"{name.lower()}-wa" in str(w.value) and "credentials refused" in str(w.value)
                       for w in at.warning), (name, path)


def test_cli_listings_show_one_organization(db_url: str, tmp_path: Path, orgs: dict[str, Org]) -> None:
    r = run(db_url, tmp_path, "channel", "list")
    assert r.returncode == 2 and "several organizations" in r.stderr and "--org" in r.stderr, r.stderr
    for name in NAMES:
        r = run(db_url, tmp_path, "channel", "list", "--org", name)
        assert r.returncode == 0, r.stderr
        other = next(n for n in NAMES if n != name).lower()
        assert f"{name.lower()}-wa" in r.stdout and f"{name.lower()}-ig" in r.stdout and other not in r.stdout
        assert "error" in r.stdout  # its channel in error, with its last error
    r = run(db_url, tmp_path, "channel", "pause", "south-ig")
    assert r.returncode == 2 and "several organizations" in r.stderr
    r = run(db_url, tmp_path, "channel", "pause", "south-ig", "--org", "North")
    assert r.returncode == 2 and "no channel 'south-ig'" in r.stderr and "Traceback" not in r.stderr
    r = run(db_url, tmp_path, "user", "create", "--email", "x@x.test", "--name", "X", "--role", "agent")
    assert r.returncode == 2 and "several organizations" in r.stderr  # never a silent third organization

    r = run(db_url, tmp_path, "status")
    assert r.returncode == 0, r.stderr
    assert "2 organizations; webhook backlog 7; outbox 0 pending, 2 dead letters" in r.stdout
    assert "North (id" in r.stdout and "South (id" in r.stdout and "1 active, 1 error" in r.stdout
    assert "North-Secret sync failed" in r.stdout and "South-Secret sync failed" in r.stdout
