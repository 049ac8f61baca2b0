"""AppTest of the messaging window in the reply box, the template picker, New message and the Sync
templates button, against a real database (and the sandbox over real HTTP for the sync)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from connectors.sandbox import SandboxConfig, create_app
from switchboard.auth.users import create_user
from switchboard.db.schema import Contact, Conversation, Message
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.conversations import accept
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.services.templates import sync_templates
from switchboard.settings import get_settings
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from tests.fakes.server import run_asgi
from tests.helpers import login_apptest

NOW = datetime.now(UTC)
ORDER = {"name": "order_update", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
         "components": [{"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
                        {"type": "BODY", "text": "Hi {{1}}, your order {{2}} ships today.",
                         "example": {"body_text": [["Ana", "#1"]]}}]}


def _inbox() -> None:
    from app.views import inbox

    inbox.page()


def _new_message() -> None:
    from app.views import new_message

    new_message.page()


def _admin() -> None:
    from app.views import admin_channels

    admin_channels.page()


def _ingest(engine: Engine, channel: int, contact: str, name: str, ago: timedelta) -> int:
    with UnitOfWork(engine) as uow:
        ingest_items(uow, channel_id=channel, now=NOW - ago, items=[InboundMessage(
            provider_message_id=f"in-{channel}-{contact}", contact=ContactRef(contact, display_name=name),
            sent_at=NOW - ago, body=f"hello from {name}")])
        uow.commit()
    with UnitOfWork(engine) as uow:
        return int(uow.session.execute(select(Conversation.id).join(Contact, Contact.id == Conversation.contact_id)
                                       .where(Conversation.channel_id == channel,
                                              Contact.provider_contact_id == contact)).scalar_one())


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Window Co")
        system = Actor.system(org)
        wa = create_channel(uow, system, key="wa", provider="whatsapp", name="WhatsApp", secret_key=key).id
        fb = create_channel(uow, system, key="fb", provider="messenger", name="Messenger", secret_key=key).id
        tg = create_channel(uow, system, key="tg", provider="telegram", name="Telegram", secret_key=key).id
        users = {email: create_user(uow, org, email=email, name=email.split("@")[0].title(), role=role,
                                    secret_key=key, password="long enough password").user_id
                 for email, role in (("agent@w.test", "agent"), ("viewer@w.test", "agent"), ("root@w.test", "admin"))}
        for channel in (wa, fb, tg):
            grant_channel_permission(uow, system, user_id=users["agent@w.test"], channel_id=channel, can_view=True,
                                     can_send=True)
        grant_channel_permission(uow, system, user_id=users["viewer@w.test"], channel_id=wa, can_view=True,
                                 can_send=False)
        sync_templates(uow, system, wa, [ORDER])
        uow.commit()
    convs = {"wa_late": _ingest(engine, wa, "4915100000001", "Wanda", timedelta(hours=30)),
             "wa_fresh": _ingest(engine, wa, "4915100000002", "Frida", timedelta(minutes=5)),
             "fb_tag": _ingest(engine, fb, "psid-3d", "Mona", timedelta(days=3)),
             "fb_closed": _ingest(engine, fb, "psid-8d", "Otto", timedelta(days=8))}
    agent = Actor(users["agent@w.test"], org, "agent", "agent@w.test")
    with UnitOfWork(engine) as uow:
        for conversation in convs.values():
            accept(uow, agent, conversation)
        uow.commit()
    return {"org": org, "users": users, "convs": convs, "wa": wa, "fb": fb, "tg": tg}


def _text(at: AppTest) -> str:
    parts = [t.value for t in at.text] + [c.value for c in at.caption] + [str(e.value) for e in at.error]
    parts += [i.value for i in at.info] + [w.value for w in at.warning] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


def _open(engine: Engine, world: dict[str, Any], conversation: str) -> AppTest:
    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, world["users"]["agent@w.test"])
    at.session_state["selected_conversation"] = world["convs"][conversation]
    at.run()
    assert not at.exception, at.exception
    return at


def _outbound(engine: Engine) -> list[tuple[str, str | None]]:
    with UnitOfWork(engine) as uow:
        return [(r.content_type, r.body) for r in uow.session.execute(
            select(Message.content_type, Message.body).where(Message.direction == "OUTBOUND").order_by(Message.id))]


@pytest.mark.usefixtures("app_env")
def test_inside_the_window_free_text_is_offered(engine: Engine, world: dict[str, Any]) -> None:
    at = _open(engine, world, "wa_fresh")
    cid = world["convs"]["wa_fresh"]
    assert "24-hour customer-service window" in _text(at) and "left to reply" in _text(at)
    at.text_area(key=f"draft_{cid}").input("Hi Frida!")
    at.button(key=f"send_{cid}").click().run()
    assert _outbound(engine) == [("text", "Hi Frida!")]


@pytest.mark.usefixtures("app_env")
def test_whatsapp_outside_the_window_offers_templates_with_preview(engine: Engine, world: dict[str, Any]) -> None:
    at = _open(engine, world, "wa_late")
    cid = world["convs"]["wa_late"]
    assert "Send an approved template" in _text(at)
    assert not [t for t in at.text_area if t.key == f"draft_{cid}"]  # no free text outside the window
    assert at.selectbox(key=f"tpl_{cid}_template").options == ["order_update (en_US)"]
    inputs = [t for t in at.text_input if t.key and t.key.startswith(f"tpl_{cid}_")]
    assert [t.label for t in inputs] == ["Header {{1}}", "Body {{1}}", "Body {{2}}"]
    assert "Order {{1}}" in _text(at)  # the preview shows the gaps
    for widget, value in zip(inputs, ["#42", "Wanda", "#42"], strict=True):
        widget.input(value)
    at.run()
    assert "Order #42\nHi Wanda, your order #42 ships today." in _text(at)
    at.button(key=f"send_tpl_{cid}").click().run()
    assert not at.exception, at.exception
    assert "queued" in _text(at)
    assert _outbound(engine) == [("template", "Order #42\nHi Wanda, your order #42 ships today.")]


@pytest.mark.usefixtures("app_env")
def test_messenger_after_24_hours_replies_with_the_human_agent_tag(engine: Engine, world: dict[str, Any]) -> None:
    at = _open(engine, world, "fb_tag")
    cid = world["convs"]["fb_tag"]
    assert any("HUMAN_AGENT" in w.value and "7 days" in w.value for w in at.warning)
    at.text_area(key=f"draft_{cid}").input("Sorry for the wait")
    at.button(key=f"send_{cid}").click().run()
    assert _outbound(engine) == [("text", "Sorry for the wait")]


@pytest.mark.usefixtures("app_env")
def test_messenger_after_7_days_refuses_clearly(engine: Engine, world: dict[str, Any]) -> None:
    at = _open(engine, world, "fb_closed")
    cid = world["convs"]["fb_closed"]
    assert any("within 7 days" in str(e.value) for e in at.error)
    assert not [t for t in at.text_area if t.key == f"draft_{cid}"]
    assert not [b for b in at.button if b.key in (f"send_{cid}", f"send_tpl_{cid}")]


def _new_message_page(engine: Engine, world: dict[str, Any], user: str = "agent@w.test") -> AppTest:
    at = login_apptest(AppTest.from_function(_new_message, default_timeout=30), engine, world["users"][user])
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.usefixtures("app_env")
def test_new_message_to_a_new_whatsapp_number_with_a_template(engine: Engine, world: dict[str, Any]) -> None:
    at = _new_message_page(engine, world)
    wa = world["wa"]
    assert at.selectbox(key="nm_channel").options == ["Messenger · Messenger", "Telegram · Telegram",
                                                      "WhatsApp · WhatsApp"]
    at.selectbox(key="nm_channel").select_index(2).run()
    at.radio(key=f"nm_mode_{wa}").set_value("New phone number").run()
    at.text_input(key=f"nm_recipient_{wa}").input("0049 151 2345 6789").run()
    assert "Writing to +4915123456789" in _text(at)
    assert "only an approved template" in _text(at)
    for widget, value in zip([t for t in at.text_input if t.key and t.key.startswith(f"nm_tpl_{wa}_")],
                             ["#7", "Ana", "#7"], strict=True):
        widget.input(value)
    at.button(key="nm_send").click().run()
    assert not at.error, [e.value for e in at.error]
    with UnitOfWork(engine) as uow:
        conv = uow.session.execute(
            select(Conversation.id, Conversation.status, Conversation.assigned_user_id)
            .join(Contact, Contact.id == Conversation.contact_id).where(Contact.phone == "+4915123456789")).one()
    assert (conv.status, conv.assigned_user_id) == ("ASSIGNED", world["users"]["agent@w.test"])
    assert at.session_state["selected_conversation"] == conv.id
    assert _outbound(engine)[-1] == ("template", "Order #7\nHi Ana, your order #7 ships today.")


@pytest.mark.usefixtures("app_env")
def test_new_message_refuses_an_invalid_number_and_writes_to_an_existing_contact(
        engine: Engine, world: dict[str, Any]) -> None:
    at = _new_message_page(engine, world)
    wa = world["wa"]
    at.selectbox(key="nm_channel").select_index(2).run()
    at.radio(key=f"nm_mode_{wa}").set_value("New phone number").run()
    at.text_input(key=f"nm_recipient_{wa}").input("0151 2345").run()
    assert any("international phone number" in str(e.value) for e in at.error)
    assert not [b for b in at.button if b.key == "nm_send"]

    at.radio(key=f"nm_mode_{wa}").set_value("Existing contact").run()
    at.text_input(key=f"nm_query_{wa}").input("Frida").run()
    assert "left to reply" in _text(at)  # Frida wrote 5 minutes ago: free text
    at.text_area(key=f"nm_body_{wa}").input("Following up")
    at.button(key="nm_send").click().run()
    assert not at.error, [e.value for e in at.error]
    assert _outbound(engine)[-1] == ("text", "Following up")
    assert at.session_state["selected_conversation"] == world["convs"]["wa_fresh"]


@pytest.mark.usefixtures("app_env")
def test_new_message_on_telegram_and_without_send_permission(engine: Engine, world: dict[str, Any]) -> None:
    at = _new_message_page(engine, world)
    tg = world["tg"]
    at.selectbox(key="nm_channel").select_index(1).run()
    at.radio(key=f"nm_mode_{tg}").set_value("Telegram username or id").run()
    at.text_input(key=f"nm_recipient_{tg}").input("123456789").run()
    assert "no messaging window" in _text(at)
    at.text_area(key=f"nm_body_{tg}").input("Hello on Telegram")
    at.button(key="nm_send").click().run()
    assert _outbound(engine)[-1] == ("text", "Hello on Telegram")

    at = _new_message_page(engine, world, "viewer@w.test")
    assert "may not send on any channel" in _text(at)


@pytest.fixture
def sandbox() -> Iterator[str]:
    config = SandboxConfig(phone_number_id="100", access_token="tok", app_secret="s", webhook_url="")
    with run_asgi(create_app(config)) as base:
        yield base


@pytest.mark.usefixtures("app_env")
def test_sync_templates_button(engine: Engine, world: dict[str, Any], sandbox: str) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        sb = create_channel(uow, Actor.system(world["org"]), key="sb", provider="sandbox", name="Sandbox",
                            secret_key=key, external_id="100",
                            credentials={"access_token": "tok", "app_secret": "s", "phone_number_id": "100",
                                         "waba_id": "sandbox-waba", "api_base_url": sandbox}).id
        uow.commit()
    at = login_apptest(AppTest.from_function(_admin, default_timeout=30), engine, world["users"]["root@w.test"])
    at.run()
    assert not at.exception, at.exception
    assert "No templates synced yet" in _text(at)
    at.button(key=f"sync_templates_{sb}").click().run()
    assert not at.exception, at.exception
    assert "Templates of sb synced: 6 added, 0 updated, 0 removed." in _text(at)
    table = next(d.value for d in at.dataframe if "spring_sale" in d.value.to_string())
    assert {(r["Name"], r["Status"]) for _, r in table.iterrows()} >= {
        ("order_update", "APPROVED"), ("spring_sale", "PENDING"), ("crypto_offer", "REJECTED")}
    assert list(table.columns) == ["Name", "Language", "Category", "Status"]
    at.button(key=f"sync_templates_{world['wa']}").click().run()  # no credentials: the error is shown
    assert any("Template sync of wa failed" in str(e.value) for e in at.error)
