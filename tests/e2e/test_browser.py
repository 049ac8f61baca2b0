"""A real browser (Debian's Chromium via Playwright) against `streamlit run app/main.py`.

An agent signs in for the first time (password, then TOTP enrollment and recovery codes), refreshes
the page and stays signed in, opens a conversation, sees the customer's text as plain text, accepts
it and replies; the reply lands in the outbox.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import Engine, select

from switchboard.auth.users import create_user
from switchboard.cli.main import streamlit_command
from switchboard.crypto import decrypt
from switchboard.db.schema import Message, User
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from tests.e2e.conftest import CHROMIUM
from tests.helpers import free_port, wait_for_login_cookie, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "browser-test-password"
SHOTS = Path(os.environ.get("SWITCHBOARD_SCREENSHOTS", "/tmp/switchboard-screenshots"))
CUSTOMER_TEXT = "**not bold** <b>not html</b> where is my parcel?"
WAIT_MS = 30_000  # for every action and expectation: a cold first page load on a fresh clone under load is slow

pytestmark = [pytest.mark.e2e, pytest.mark.browser]  # tests/e2e/conftest.py: skip or fail without Chromium


@pytest.fixture
def seeded(engine: Engine) -> dict[str, int]:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Browser Co")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WhatsApp", secret_key=key,
                            external_id="100", credentials={"app_secret": "s", "access_token": "t",
                                                            "phone_number_id": "100"})
        agent = create_user(uow, org, email="agent@browser.test", name="Agnes Agent", role="agent",
                            secret_key=key, password=PASSWORD)
        grant_channel_permission(uow, Actor.system(org), user_id=agent.user_id, channel_id=ch.id, can_view=True, can_send=True)
        uow.commit()
    with UnitOfWork(engine) as uow:
        ingest_items(uow, channel_id=ch.id, items=[InboundMessage(
            provider_message_id="wamid.browser1",
            contact=ContactRef("4915100000", display_name="Bruno Buyer", phone="4915100000"),
            sent_at=datetime.now(UTC), body=CUSTOMER_TEXT)])
        uow.commit()
    with UnitOfWork(engine) as uow:
        conv_id = uow.session.execute(select(Message.conversation_id)).scalar_one()
    return {"user_id": agent.user_id, "conversation_id": conv_id}


@pytest.fixture
def app_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=db_url, SWITCHBOARD_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        streamlit_command(port, "127.0.0.1"),  # the app exactly as `switchboard app` starts it
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, f"{base}/_stcore/health", timeout=120, what="streamlit", every=0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _totp_now(engine: Engine, user_id: int) -> str:
    with UnitOfWork(engine) as uow:
        blob = uow.session.execute(select(User.totp_secret_enc).where(User.id == user_id)).scalar_one()
    assert blob is not None, "user has no TOTP secret"
    secret = decrypt(get_settings().secret_key_bytes(), blob, f"totp:{user_id}".encode()).decode()
    return pyotp.TOTP(secret).now()


def first_sign_in(page: Any, engine: Engine, app_url: str, email: str, user_id: int, password: str = PASSWORD) -> None:
    """Sign in for the first time: password, then enroll the authenticator and confirm the recovery codes."""
    from playwright.sync_api import expect

    page.goto(app_url)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Set up two-factor authentication")).to_be_visible(timeout=WAIT_MS)
    page.get_by_label("Enter the 6-digit code your app shows now").fill(_totp_now(engine, user_id))
    page.get_by_role("button", name="Confirm and turn on").click()
    expect(page.get_by_text("Save your recovery codes")).to_be_visible(timeout=WAIT_MS)
    page.get_by_text(re.compile("saved", re.I)).first.click()
    page.get_by_role("button", name="Continue to Switchboard").click()
    expect(page.get_by_text("Pick a conversation")).to_be_visible(timeout=WAIT_MS)
    wait_for_login_cookie(page)  # the callers go to another address next: a new session restored from it


def launch(p: Any) -> Any:
    """Debian's Chromium through Playwright, with the flags a container needs."""
    return p.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])


def test_first_login_refresh_accept_and_reply(engine: Engine, seeded: dict[str, int], app_url: str,
                                              tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        try:
            page.goto(f"{app_url}/account")  # a bookmarked page while signed out: the sign-in form
            expect(page.get_by_text("Sign in to Switchboard")).to_be_visible(timeout=WAIT_MS)
            assert page.get_by_text("Page not found").count() == 0
            first_sign_in(page, engine, app_url, "agent@browser.test", seeded["user_id"])

            # a refresh is a new Streamlit session: the login is restored from the signed cookie
            page.goto(f"{app_url}/?c={seeded['conversation_id']}")
            expect(page.get_by_text("Bruno Buyer").first).to_be_visible(timeout=WAIT_MS)
            # customer text is plain text, not Markdown or HTML
            thread = page.get_by_test_id("stChatMessageContent")  # the list's preview cell may say it too
            expect(thread.get_by_text(CUSTOMER_TEXT)).to_be_visible(timeout=WAIT_MS)
            page.get_by_role("button", name="Accept").click()
            expect(page.get_by_role("button", name="Complete")).to_be_visible(timeout=WAIT_MS)

            page.get_by_placeholder("Type your reply…").fill("Your parcel ships today.")
            page.get_by_role("button", name="Send").click()
            expect(thread.get_by_text("Your parcel ships today.")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_placeholder("Type your reply…")).to_have_value("", timeout=WAIT_MS)  # draft cleared once queued
            page.screenshot(path=str(SHOTS / "inbox.png"), full_page=True)
        finally:
            browser.close()

    with UnitOfWork(engine) as uow:
        replies = uow.session.execute(
            select(Message.body, Message.status, Message.author_user_id).where(Message.direction == "OUTBOUND")
        ).all()
    assert [(r.body, r.status, r.author_user_id) for r in replies] == [
        ("Your parcel ships today.", "PENDING", seeded["user_id"])]
