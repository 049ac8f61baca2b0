"""Channels & health, managing a channel (AppTest against a real database and a Graph API fake over
HTTP): test the connection, save new credentials, rename, pause/resume, remove; the banner admins see."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from switchboard.auth.users import create_user
from switchboard.db.schema import Channel
from switchboard.services.channels import channel_credentials, create_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from tests.fakes.graph import FakeGraph
from tests.fakes.server import run_asgi
from tests.helpers import login_apptest


def _admin() -> None:
    from app.views import admin_channels

    admin_channels.page()


@pytest.fixture
def rig(engine: Engine) -> Iterator[dict[str, Any]]:
    key = get_settings().secret_key_bytes()
    graph = FakeGraph(token="good", account_id="4242")
    graph.account_name = "Page Support"
    with run_asgi(graph.app) as base:
        with UnitOfWork(engine) as uow:
            org = create_organization(uow, "Manage Co")
            ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WhatsApp",
                                secret_key=key, external_id="4242",
                                credentials={"access_token": "stale", "app_secret": "s", "api_base_url": base})
            admin = create_user(uow, org, email="root@m.test", name="Root", role="admin", secret_key=key,
                                password="long enough password").user_id
            uow.commit()
        yield {"org": org, "channel": ch.id, "admin": admin, "key": key}


def _channel(engine: Engine) -> Channel:
    with UnitOfWork(engine) as uow:
        row = uow.session.execute(select(Channel)).scalar_one()
        uow.session.expunge(row)
        return row


def _messages(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("success", "error", "text", "warning") for e in getattr(at, kind))


@pytest.mark.usefixtures("app_env")
def test_admin_tests_fixes_pauses_and_removes_a_channel(engine: Engine, rig: dict[str, Any]) -> None:
    cid = rig["channel"]
    at = login_apptest(AppTest.from_function(_admin, default_timeout=30), engine, rig["admin"])
    at.run()
    assert not at.exception, at.exception

    at.button(key=f"test_{cid}").click().run()
    assert "Connection to wa failed: credentials refused" in _messages(at)
    assert _channel(engine).status == "error"

    at.text_input(key=f"cred_{cid}_access_token").input("good")
    at.button(key=f"FormSubmitter:credentials_{cid}-Save credentials").click().run()
    assert not at.exception, at.exception
    assert "Credentials of wa saved." in _messages(at)
    with UnitOfWork(engine) as uow:
        creds = channel_credentials(uow, Actor.system(rig["org"]), cid, rig["key"])
    assert creds["access_token"] == "good" and creds["app_secret"] == "s"  # the others kept
    assert _channel(engine).status == "active"

    at.button(key=f"test_{cid}").click().run()
    assert "Connection to wa works: connected as Page Support (4242)" in _messages(at)
    assert "Last connection test" in _messages(at)

    at.text_input(key=f"name_{cid}").input("Front desk")
    at.button(key=f"FormSubmitter:rename_{cid}-Rename").click().run()
    assert _channel(engine).name == "Front desk"

    at.button(key=f"pause_{cid}").click().run()
    assert _channel(engine).status == "paused"
    at.run()
    at.button(key=f"resume_{cid}").click().run()
    assert _channel(engine).status == "active"

    at.run()
    assert at.button(key=f"remove_{cid}").disabled  # needs the confirmation first
    at.checkbox(key=f"sure_remove_{cid}").check().run()
    at.button(key=f"remove_{cid}").click().run()
    assert "removed" in _messages(at)
    assert _channel(engine).status == "removed"
    at.run()
    assert "No channel to manage." in [i.value for i in at.info]
