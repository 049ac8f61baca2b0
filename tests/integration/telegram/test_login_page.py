"""Streamlit AppTest of the Telegram login page, driven across reruns with the fake Telegram
(``SWITCHBOARD_TELEGRAM_FAKE=1``) and a real database."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from connectors.telegram.fake import DEMO_2FA_PHONE, DEMO_CODE, DEMO_PASSWORD, DEMO_PHONE, FakeTelegramGateway
from switchboard.auth.login_sessions import create_session
from switchboard.auth.users import create_user
from switchboard.services.channels import channel_credentials, create_channel, get_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


@pytest.fixture(autouse=True)
def telegram_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page talks to the in-memory fake Telegram (test/demo only switch)."""
    monkeypatch.setenv("SWITCHBOARD_TELEGRAM_FAKE", "1")


def _entry() -> None:
    from app.views import telegram_login

    telegram_login.page()


def _setup(engine: Engine, role: str = "admin") -> tuple[AppTest, int]:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Acme")
        user = create_user(uow, org, email=f"{role}@example.com", name="Ada", role=role, secret_key=key,
                           password="correct horse battery")
        ch = create_channel(uow, Actor.system(org), key="tg-main", provider="telegram", name="Support TG", secret_key=key,
                            credentials={"api_id": 1, "api_hash": "abc"})
        uow.commit()
    with UnitOfWork(engine) as uow:
        token = create_session(uow, user.user_id)
        uow.commit()
    at = AppTest.from_function(_entry, default_timeout=30)
    at.session_state["sb_auth_token"] = token.token
    at.session_state["sb_auth_actor"] = token.actor
    at.session_state["sb_auth_name"] = token.name
    at.session_state["sb_auth_checked_at"] = time.monotonic()
    at.session_state["sb_auth_restore_tried"] = True
    return at.run(), ch.id


def _login_as_admin_again(engine: Engine, old: AppTest) -> tuple[AppTest, None]:
    at = AppTest.from_function(_entry, default_timeout=30)
    for key in ("sb_auth_token", "sb_auth_actor", "sb_auth_name", "sb_auth_restore_tried"):
        at.session_state[key] = old.session_state[key]
    at.session_state["sb_auth_checked_at"] = time.monotonic()
    return at.run(), None


def _creds(engine: Engine, channel_id: int) -> dict[str, object]:
    with UnitOfWork(engine) as uow:
        system = Actor.system(get_channel(uow, channel_id).organization_id)
        return channel_credentials(uow, system, channel_id, get_settings().secret_key_bytes())


def _errors(at: AppTest) -> str:
    return " | ".join(str(e.value) for e in at.error)


def test_login_with_code_and_two_step_password(app_env: None, engine: Engine) -> None:
    at, channel_id = _setup(engine)
    assert at.title[0].value == "Telegram login" and not at.exception
    at.text_input(key="tg_phone_number").input(DEMO_2FA_PHONE)
    at = at.button[0].click().run()  # "Send code" (form submit)
    assert not at.exception, at.exception
    creds = _creds(engine, channel_id)
    assert str(creds["session"]).startswith("fake:")  # persisted right after send_code
    assert creds["api_id"] == 1 and creds["phone"] == DEMO_2FA_PHONE

    at.text_input(key="tg_code_input").input("99999")
    at = at.button[0].click().run()
    assert "wrong code" in _errors(at)

    # a browser refresh is a brand-new Streamlit session: the login continues from the credentials
    at, _ = _login_as_admin_again(engine, at)
    at.text_input(key="tg_code_input").input(DEMO_CODE)
    at = at.button[0].click().run()
    assert not at.exception and "two-step verification" in " ".join(str(m.value) for m in at.markdown)
    at.text_input(key="tg_password_input").input("nope")
    at = at.button[0].click().run()
    assert "wrong two-step verification password" in _errors(at)
    at.text_input(key="tg_password_input").input(DEMO_PASSWORD)
    at = at.button[0].click().run()
    assert not at.exception and at.success
    creds = _creds(engine, channel_id)
    assert creds["user_id"] and creds["user_name"] == "Support"
    # the stored session really is logged in
    from connectors.telegram.fake import default_fake_world

    assert FakeTelegramGateway(default_fake_world(), str(creds["session"])).me() is not None


def test_bad_phone_and_restart(app_env: None, engine: Engine) -> None:
    at, channel_id = _setup(engine)
    at.text_input(key="tg_phone_number").input("hello")
    at = at.button[0].click().run()
    assert "not a phone number" in _errors(at)
    at.text_input(key="tg_phone_number").input(DEMO_PHONE)
    at = at.button[0].click().run()
    assert at.text_input(key="tg_code_input") is not None
    at = at.button(key="tg_restart").click().run()
    assert at.text_input(key="tg_phone_number").value == DEMO_PHONE
    at.text_input(key="tg_phone_number").input(DEMO_PHONE)
    at = at.button[0].click().run()
    at.text_input(key="tg_code_input").input(DEMO_CODE)
    at = at.button[0].click().run()
    assert not at.exception and at.success and "Connected" not in _errors(at)
    assert _creds(engine, channel_id)["user_id"]


def test_agents_cannot_use_the_page(app_env: None, engine: Engine) -> None:
    at, _ = _setup(engine, role="agent")
    assert "Only admins" in _errors(at)
