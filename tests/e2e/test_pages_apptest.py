"""Streamlit AppTest of the inbox, assignment and admin pages against a real database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from switchboard.auth.users import create_user
from switchboard.db.schema import Conversation, Message
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from tests.helpers import login_apptest


def _inbox() -> None:
    from app.views import inbox

    inbox.page()


def _assignment() -> None:
    from app.views import assignment

    assignment.page()


def _admin() -> None:
    from app.views import admin_channels

    admin_channels.page()


def _main() -> None:
    import runpy
    from pathlib import Path

    runpy.run_path(str(Path.cwd() / "app" / "main.py"), run_name="__main__")


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Pages Co")
        system = Actor.system(org)
        wa = create_channel(uow, system, key="wa", provider="whatsapp", name="WhatsApp", secret_key=key)
        ig = create_channel(uow, system, key="ig", provider="instagram", name="Instagram", secret_key=key)
        users = {}
        for email, role in (("agent@p.test", "agent"), ("ig@p.test", "agent"), ("boss@p.test", "manager"),
                            ("root@p.test", "admin")):
            users[email] = create_user(uow, org, email=email, name=email.split("@")[0].title(), role=role,
                                       secret_key=key, password="long enough password").user_id
        grant_channel_permission(uow, system, user_id=users["agent@p.test"], channel_id=wa.id, can_view=True,
                                 can_send=True)
        grant_channel_permission(uow, system, user_id=users["ig@p.test"], channel_id=ig.id, can_view=True,
                                 can_send=True)
        uow.commit()
    with UnitOfWork(engine) as uow:
        ingest_items(uow, channel_id=wa.id, items=[InboundMessage(
            provider_message_id="wamid.p1", contact=ContactRef("491", display_name="Wanda"),
            sent_at=datetime.now(UTC), body="*hello* from WhatsApp")])
        uow.commit()
    with UnitOfWork(engine) as uow:
        conv = uow.session.execute(select(Conversation.id)).scalar_one()
    return {"users": users, "conversation_id": conv}


def _text(at: AppTest) -> str:
    parts = [t.value for t in at.text] + [c.value for c in at.caption] + [str(e.value) for e in at.error]
    parts += [i.value for i in at.info] + [w.value for w in at.warning]
    return "\n".join(str(p) for p in parts)


@pytest.mark.usefixtures("app_env")
def test_agent_accepts_and_replies(engine: Engine, world: dict[str, Any]) -> None:
    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, world["users"]["agent@p.test"])
    at.run()
    assert not at.exception, at.exception
    assert "Pick a conversation" in _text(at)
    assert len(at.dataframe) == 1 and "Wanda" in at.dataframe[0].value.to_string()

    at.session_state["selected_conversation"] = world["conversation_id"]
    at.run()
    assert "*hello* from WhatsApp" in _text(at)  # shown verbatim, as text
    at.button(key=f"accept_{world['conversation_id']}").click().run()
    assert not at.exception, at.exception
    at.text_area(key=f"draft_{world['conversation_id']}").input("On my way!")
    at.button(key=f"send_{world['conversation_id']}").click().run()
    assert not at.exception, at.exception
    at.button(key=f"send_{world['conversation_id']}").click().run()  # empty now: nothing more is sent
    with UnitOfWork(engine) as uow:
        bodies = list(uow.session.execute(select(Message.body).where(Message.direction == "OUTBOUND")).scalars())
    assert bodies == ["On my way!"]
    assert "On my way!" in _text(at)


@pytest.mark.usefixtures("app_env")
def test_agent_without_permission_sees_nothing(engine: Engine, world: dict[str, Any]) -> None:
    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, world["users"]["ig@p.test"])
    at.run()
    assert not at.exception
    assert len(at.dataframe) == 0
    at.session_state["selected_conversation"] = world["conversation_id"]
    at.run()
    assert "Wanda" not in _text(at) and "hello" not in _text(at)


@pytest.mark.usefixtures("app_env")
def test_manager_assignment_and_admin_pages(engine: Engine, world: dict[str, Any]) -> None:
    at = login_apptest(AppTest.from_function(_assignment, default_timeout=30), engine, world["users"]["boss@p.test"])
    at.run()
    assert not at.exception, at.exception
    assert any("Wanda" in d.value.to_string() for d in at.dataframe)

    at = login_apptest(AppTest.from_function(_admin, default_timeout=30), engine, world["users"]["boss@p.test"])
    at.run()
    assert any("only admins" in str(e.value) for e in at.error)

    at = login_apptest(AppTest.from_function(_admin, default_timeout=30), engine, world["users"]["root@p.test"])
    at.run()
    assert not at.exception, at.exception
    assert any("/webhooks/whatsapp/" in d.value.to_string() for d in at.dataframe)


_AGENT_PAGES = {("inbox", "Inbox"), ("new-message", "New message"), ("account", "My account")}
_MANAGER_PAGES = _AGENT_PAGES | {("assignment", "Assignment"), ("analytics", "Analytics"),
                                 ("outbox", "Outbox"), ("saved-replies", "Saved replies")}
_ADMIN_PAGES = _MANAGER_PAGES | {("channels", "Channels & health"), ("organization", "Organization"),
                                 ("telegram-login", "Telegram login"), ("admin-users", "Users & access"),
                                 ("api-keys", "API keys"), ("event-webhooks", "Event webhooks"),
                                 ("audit-log", "Audit log")}


def _offered(at: AppTest) -> set[tuple[str, str]]:
    """(url path, title) of the pages st.navigation registered in the last run (AppTest has no public
    accessor; the default page's url_pathname is "", its script hash is still that of its url path)."""
    from streamlit.util import calc_hash

    by_hash = {calc_hash(path): path for path, _ in _ADMIN_PAGES}
    return {(by_hash.get(str(info["page_script_hash"]), str(info["url_pathname"])), str(info["page_name"]))
            for info in at._registered_pages.values()}


@pytest.mark.usefixtures("app_env")
def test_navigation_offers_exactly_the_pages_of_the_role(engine: Engine, world: dict[str, Any]) -> None:
    from streamlit.util import calc_hash

    at = AppTest.from_function(_main, default_timeout=30)
    at.session_state["sb_auth_restore_tried"] = True
    at.run()
    assert not at.exception, at.exception
    assert any("Sign in" in t.value for t in at.title)

    for email, expected in (("agent@p.test", _AGENT_PAGES), ("boss@p.test", _MANAGER_PAGES),
                            ("root@p.test", _ADMIN_PAGES)):
        at = login_apptest(AppTest.from_function(_main, default_timeout=30), engine, world["users"][email])
        at.run()
        assert not at.exception, at.exception
        assert _offered(at) == expected, email

    # the same request for an offered page opens it (so the refusals below are not vacuous)
    at = login_apptest(AppTest.from_function(_main, default_timeout=30), engine, world["users"]["root@p.test"])
    at.run()
    at._page_hash = calc_hash("audit-log")
    at.run()
    assert [t.value for t in at.title] == ["Audit log"]

    # an agent who forges the URL of a page not offered gets the inbox, and nothing of that page
    for url_path in sorted(path for path, _ in _ADMIN_PAGES - _AGENT_PAGES):
        at = login_apptest(AppTest.from_function(_main, default_timeout=30), engine,
                           world["users"]["agent@p.test"])
        at.query_params["page"] = url_path
        at.run()
        at._page_hash = calc_hash(url_path)  # what the browser asks for at …/<url_path>
        at.run()
        assert not at.exception, at.exception
        assert "Pick a conversation" in _text(at), url_path
        titles = {t.value for t in at.title}
        assert not titles & {title for _, title in _ADMIN_PAGES - _AGENT_PAGES}, (url_path, titles)
        shown = _text(at) + "".join(d.value.to_string() for d in at.dataframe)
        assert "root@p.test" not in shown and "/webhooks/" not in shown, url_path


def _org() -> None:
    from app.views import admin_org

    admin_org.page()


@pytest.mark.usefixtures("app_env")
def test_admin_changes_organization_settings(engine: Engine, world: dict[str, Any]) -> None:
    from switchboard.services.organizations import get_organization

    at = login_apptest(AppTest.from_function(_org, default_timeout=30), engine, world["users"]["root@p.test"])
    at.run()
    assert not at.exception, at.exception
    at.text_input(key="bh_mon_start").input("08:30")
    at.text_input(key="bh_mon_end").input("16:00")
    at.text_input(key="bh_tue_start").input("25:00")
    at.text_input(key="bh_tue_end").input("16:00")
    at.toggle[0].set_value(True)
    at.button[0].click().run()
    assert any("HH:MM" in str(e.value) for e in at.error)  # a bad time is refused with the reason
    at.text_input(key="bh_tue_start").input("09:00")
    at.button[0].click().run()
    assert not at.error, [e.value for e in at.error]
    with UnitOfWork(engine) as uow:
        org = get_organization(uow, Actor.system(_org_id(engine)))
    assert org.business_hours["mon"] == [["08:30", "16:00"]] and org.auto_assign

    at = login_apptest(AppTest.from_function(_org, default_timeout=30), engine, world["users"]["boss@p.test"])
    at.run()
    at.button[0].click().run()
    assert any("only admins" in str(e.value) for e in at.error)


def _org_id(engine: Engine) -> int:
    from switchboard.db.schema import Organization

    with UnitOfWork(engine) as uow:
        return int(uow.session.execute(select(Organization.id)).scalar_one())


def _api_keys() -> None:
    from app.views import admin_api_keys

    admin_api_keys.page()


@pytest.mark.usefixtures("app_env")
def test_admin_creates_sees_and_revokes_an_api_key(engine: Engine, world: dict[str, Any]) -> None:
    from switchboard.db.schema import ApiKey, AuditLog
    from switchboard.services.api_keys import count_usage, hash_key

    at = login_apptest(AppTest.from_function(_api_keys, default_timeout=30), engine, world["users"]["root@p.test"])
    at.run()
    assert not at.exception, at.exception
    assert "No API keys yet" in _text(at)
    at.text_input[0].input("shop orders")
    at.multiselect[1].set_value(["wa"])
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (shown,) = [c.value for c in at.code]  # the whole key, this once
    assert shown.startswith("sb_live_")
    with UnitOfWork(engine) as uow:
        secret_hash, scopes, prefix = uow.session.execute(
            select(ApiKey.secret_hash, ApiKey.scopes, ApiKey.prefix)).one()
    assert secret_hash == hash_key(shown) and scopes == ["messages:send", "messages:read"]
    listed = at.dataframe[0].value.to_string()
    assert prefix in listed and "shop orders" in listed and "active" in listed and "wa" in listed
    assert shown not in listed

    at.run()  # the next run never shows the key again
    assert not at.code and shown not in _text(at)
    at.button(key="revoke_api_key_button").click().run()
    assert not at.exception and not at.error
    assert "revoked" in at.dataframe[0].value.to_string()
    with UnitOfWork(engine) as uow:
        actions = list(uow.session.execute(select(AuditLog.action).where(AuditLog.action.like("api_key.%"))
                                           .order_by(AuditLog.id)).scalars())
    assert actions == ["api_key.created", "api_key.revoked"]
    with UnitOfWork(engine) as uow:
        key_id = uow.session.execute(select(ApiKey.id)).scalar_one()
        count_usage(uow, key_id, requests=7, messages_sent=2, errors=1)
        uow.commit()
    at.run()
    assert not at.exception
    listed, per_day = (d.value for d in at.dataframe)
    assert listed.iloc[0]["Requests (30 d)"] == 7 and listed.iloc[0]["Messages sent"] == 2
    assert per_day.iloc[0]["Errors"] == 1 and per_day.iloc[0]["Key"] == prefix

    at = login_apptest(AppTest.from_function(_api_keys, default_timeout=30), engine, world["users"]["boss@p.test"])
    at.run()
    assert any("only admins may manage api keys" in str(e.value).lower() for e in at.error) and not at.dataframe


def _event_webhooks() -> None:
    from app.views import admin_event_webhooks

    admin_event_webhooks.page()


@pytest.mark.usefixtures("app_env")
def test_admin_subscribes_sees_and_deletes_an_event_webhook(engine: Engine, world: dict[str, Any]) -> None:
    from switchboard.db.schema import EventSubscription

    at = login_apptest(AppTest.from_function(_event_webhooks, default_timeout=30), engine,
                       world["users"]["root@p.test"])
    at.run()
    assert not at.exception, at.exception
    assert "No event webhooks yet" in _text(at)
    at.text_input[0].input("https://crm.example.test/hooks")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (secret,) = [c.value for c in at.code]
    assert secret.startswith("whsec_")
    assert "https://crm.example.test/hooks" in at.dataframe[0].value.to_string()
    with UnitOfWork(engine) as uow:
        stored = uow.session.execute(select(EventSubscription.secret_enc)).scalar_one()
    assert stored is not None and secret.encode() not in bytes(stored)  # encrypted at rest
    at.button(key="event_webhook_delete").click().run()
    assert not at.exception and "No event webhooks yet" in _text(at)

    at = login_apptest(AppTest.from_function(_event_webhooks, default_timeout=30), engine,
                       world["users"]["boss@p.test"])
    at.run()
    assert any("only admins may manage event webhooks" in str(e.value).lower() for e in at.error)
