"""A real browser (Chromium via Playwright) against `streamlit run app/main.py` and the sandbox over
real HTTP: the customer last wrote 30 hours ago, so the reply box offers no free text but the
approved templates; the agent picks one, fills its parameters, sees the preview and sends it; the
send workflow delivers it and the sandbox (which refuses free text outside the window, like the
platform) lists it in ``/_sandbox/sent``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest
from sqlalchemy import Engine, select, update

from connectors.sandbox import SandboxConfig, create_app
from switchboard.auth.totp import encrypt_secret
from switchboard.auth.users import create_user
from switchboard.db.schema import Message, User
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.conversations import accept
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.sending import send_outbox_once
from switchboard.workflows.templates import sync_channel_templates
from tests.e2e.conftest import CHROMIUM
from tests.e2e.test_browser import PASSWORD, SHOTS, WAIT_MS, app_url  # noqa: F401 - app_url is a fixture
from tests.fakes.server import run_asgi
from tests.helpers import wait_for_login_cookie

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CUSTOMER = "4915100000042"
SECRET = pyotp.random_base32()


@pytest.fixture
def sandbox() -> Iterator[str]:
    config = SandboxConfig(phone_number_id="100", access_token="tok", app_secret="s", webhook_url="")
    assert config.enforce_window and config.enforce_templates  # the platform's rules, as in the demo
    with run_asgi(create_app(config)) as base:
        yield base


@pytest.fixture
def seeded(engine: Engine, sandbox: str) -> dict[str, int]:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Template Co")
        system = Actor.system(org)
        channel = create_channel(uow, system, key="sb", provider="sandbox", name="WhatsApp (sandbox)",
                                 secret_key=key, external_id="100",
                                 credentials={"access_token": "tok", "app_secret": "s", "phone_number_id": "100",
                                              "waba_id": "sandbox-waba", "api_base_url": sandbox}).id
        agent = create_user(uow, org, email="agent@tpl.test", name="Tia Agent", role="agent", secret_key=key,
                            password=PASSWORD).user_id
        uow.session.execute(update(User).where(User.id == agent).values(  # enrolled already: sign in with a code
            totp_secret_enc=encrypt_secret(key, agent, SECRET), totp_enabled=True))
        grant_channel_permission(uow, system, user_id=agent, channel_id=channel, can_view=True, can_send=True)
        ago = datetime.now(UTC) - timedelta(hours=30)
        ingest_items(uow, channel_id=channel, now=ago, items=[InboundMessage(
            "wamid.late", ContactRef(CUSTOMER, display_name="Lena Late"), ago, "is my order coming?")])
        uow.commit()
    with UnitOfWork(engine) as uow:
        conversation = int(uow.session.execute(select(Message.conversation_id)).scalar_one())
        accept(uow, Actor(agent, org, "agent", "agent@tpl.test"), conversation)
        uow.commit()
    connectors = ConnectorCache(engine, key)
    try:
        assert sync_channel_templates(engine, connectors, channel).inserted == 6
    finally:
        connectors.close()
    return {"conversation_id": conversation, "channel": channel}


def test_a_template_sent_outside_the_window_reaches_the_sandbox(
        engine: Engine, seeded: dict[str, int], sandbox: str, app_url: str) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(WAIT_MS)
        try:
            page.goto(app_url)
            page.get_by_label("Email").fill("agent@tpl.test")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("textbox", name="6-digit code from your authenticator app").fill(pyotp.TOTP(SECRET).now())
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("Pick a conversation")).to_be_visible(timeout=WAIT_MS)
            wait_for_login_cookie(page)

            page.goto(f"{app_url}/?c={seeded['conversation_id']}")
            expect(page.get_by_text("is my order coming?")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text("Send an approved template instead", exact=False)).to_be_visible(timeout=WAIT_MS)
            assert page.get_by_placeholder("Type your reply…").count() == 0  # no free text outside the window

            page.locator('[data-testid="stSelectbox"]').filter(has_text="Template").click()
            page.get_by_role("option", name="follow_up (en_US)").click()
            expect(page.get_by_text("Hi {{1}}, we are following up", exact=False)).to_be_visible(timeout=WAIT_MS)
            page.get_by_label("Body {{1}}").fill("Lena")
            page.get_by_label("Body {{1}}").press("Enter")
            expect(page.get_by_text("Hi Lena, we are following up on your request.", exact=False)
                   ).to_be_visible(timeout=WAIT_MS)
            page.screenshot(path=str(SHOTS / "template_picker.png"), full_page=True)
            page.get_by_role("button", name="Send template").click()
            expect(page.get_by_text("Template follow_up (en_US) queued.")).to_be_visible(timeout=WAIT_MS)
        finally:
            page.screenshot(path=str(SHOTS / "template_last.png"), full_page=True)
            browser.close()

    connectors = ConnectorCache(engine, get_settings().secret_key_bytes())
    try:
        send_outbox_once(engine, connectors)
    finally:
        connectors.close()
    with UnitOfWork(engine) as uow:
        status, content_type = uow.session.execute(
            select(Message.status, Message.content_type).where(Message.direction == "OUTBOUND")).one()
    assert (status, content_type) == ("SENT", "template")
    sent = httpx.get(f"{sandbox}/_sandbox/sent", params={"to": CUSTOMER}).json()["messages"]
    assert [(m["type"], m["payload"]["template"]["name"]) for m in sent] == [("template", "follow_up")]
    assert sent[0]["body"].startswith("Hi Lena, we are following up on your request.")
