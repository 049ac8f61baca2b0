"""A real browser: an agent opens a conversation (a read mark is queued) and sends a photo from the
reply box; the workflows send both to the sandbox; the open thread shows the new status within 2
seconds, without reloading the page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from connectors.sandbox import SandboxConfig, create_app
from connectors.whatsapp import WhatsAppConnector
from switchboard.auth.users import create_user
from switchboard.db.schema import Message
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.sending import send_outbox_once
from switchboard.workflows.signals import send_signals_once
from tests.e2e.test_browser import PASSWORD, SHOTS, WAIT_MS, app_url, first_sign_in, launch
from tests.fakes.receiver import WebhookSink
from tests.fakes.server import run_asgi

__all__ = ["app_url"]  # the Streamlit app fixture, shared with test_browser.py

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
PHONE_ID = "1098765"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@pytest.fixture
def sandbox() -> Iterator[str]:
    receiver_side = WhatsAppConnector(phone_number_id=PHONE_ID, access_token="tok", app_secret="s", provider="sandbox")
    with run_asgi(WebhookSink(receiver_side).app) as sink_url, run_asgi(create_app(SandboxConfig(
            phone_number_id=PHONE_ID, access_token="tok", app_secret="s", webhook_url=f"{sink_url}/hook",
            enforce_window=False,  # the customers wrote through the test, not the sandbox
            speed=1000.0))) as url:
        yield url
    receiver_side.close()


@pytest.fixture
def seeded(engine: Engine, sandbox: str) -> dict[str, int]:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Browser Files Co")
        ch = create_channel(uow, Actor.system(org), key="sandbox", provider="sandbox", name="Sandbox", secret_key=key,
                            external_id=PHONE_ID, credentials={"access_token": "tok", "app_secret": "s",
                                                               "api_base_url": sandbox})
        agent = create_user(uow, org, email="files@browser.test", name="Fiona Files", role="agent", secret_key=key,
                            password=PASSWORD)
        grant_channel_permission(uow, Actor.system(org), user_id=agent.user_id, channel_id=ch.id, can_view=True,
                                 can_send=True)
        uow.commit()
    with UnitOfWork(engine) as uow:
        ingest_items(uow, channel_id=ch.id, items=[InboundMessage(
            provider_message_id="wamid.files1", contact=ContactRef("4915200000", display_name="Rita Receipt"),
            sent_at=datetime.now(UTC), body="Can you send me the receipt?")])
        uow.commit()
    with UnitOfWork(engine) as uow:
        conv_id = uow.session.execute(select(Message.conversation_id)).scalar_one()
    return {"user_id": agent.user_id, "conversation_id": conv_id}


def test_agent_sends_a_photo_and_sees_it_sent_live(engine: Engine, seeded: dict[str, int], app_url: str,
                                                   sandbox: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    photo = tmp_path / "receipt.png"
    photo.write_bytes(PNG)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.set_default_timeout(WAIT_MS)
        try:
            first_sign_in(page, engine, app_url, "files@browser.test", seeded["user_id"])
            page.goto(f"{app_url}/?c={seeded['conversation_id']}")
            thread = page.get_by_test_id("stChatMessageContent")  # the list's preview cell says it too
            expect(thread.get_by_text("Can you send me the receipt?")).to_be_visible(timeout=WAIT_MS)
            page.get_by_role("button", name="Accept").click()
            expect(page.get_by_role("button", name="Complete")).to_be_visible(timeout=WAIT_MS)

            page.get_by_text("📎 Attach a file").click()
            page.locator("input[type=file]").set_input_files(str(photo))
            page.get_by_label("Caption (optional)").fill("Here is your receipt")
            page.get_by_label("Caption (optional)").press("Enter")
            page.get_by_role("button", name="Send file").click()
            expect(thread.get_by_text("Here is your receipt")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text("🕓 sending").first).to_be_visible(timeout=WAIT_MS)

            connectors = ConnectorCache(engine, get_settings().secret_key_bytes())
            try:
                stats = send_outbox_once(engine, connectors)
                read_marks = send_signals_once(engine, connectors)  # opening the conversation queued one
            finally:
                connectors.close()
            assert (stats.sent, stats.errors) == (1, [])
            assert (read_marks.sent, read_marks.errors) == (1, [])
            # no reload: the thread's live fragment shows the stored status within 2 s
            expect(page.get_by_text("✓ sent").first).to_be_visible(timeout=2000)
            page.screenshot(path=str(SHOTS / "thread-attachment.png"), full_page=True)
        finally:
            browser.close()

    with httpx.Client(base_url=sandbox, timeout=10) as control:
        state = control.get("/_sandbox/state").json()
        sent = control.get("/_sandbox/sent").json()["messages"]
    assert [(u["mime_type"], u["size"]) for u in state["uploads"]] == [("image/png", len(PNG))]
    assert [(m["type"], m["payload"]["image"]) for m in sent] == [
        ("image", {"id": state["uploads"][0]["id"], "caption": "Here is your receipt"})]
    assert state["marked_read"] == ["wamid.files1"]  # the customer sees their message read
