"""Which network failures mean "may have been sent": the Graph client over real HTTP (the sandbox answers
too late, or nobody listens), and Telegram's random_id deduplication in the fake."""

from __future__ import annotations

import socket

import httpx
import pytest

from connectors.base import AlreadySent, RetryableError, UnknownOutcomeError
from connectors.sandbox import SandboxConfig, create_app
from connectors.telegram import send_telegram
from connectors.telegram.fake import FakeTelegramGateway, FakeTelegramWorld
from connectors.telegram.gateway import random_id_for
from connectors.telegram.login import start_login, submit_code
from connectors.whatsapp import WhatsAppConnector
from switchboard.types import OutboundRequest
from tests.fakes.server import run_asgi

PHONE_ID = "100000000000009"


def _connector(base: str, timeout: float = 0.5) -> WhatsAppConnector:
    return WhatsAppConnector(phone_number_id=PHONE_ID, access_token="tok", app_secret="s", api_base_url=base,
                             timeout=httpx.Timeout(timeout, connect=timeout))


def test_a_send_answered_too_late_has_an_unknown_outcome() -> None:
    config = SandboxConfig(phone_number_id=PHONE_ID, access_token="tok", app_secret="s", webhook_url="",
                           send_statuses=False, enforce_window=False)
    with run_asgi(create_app(config)) as base, _connector(base) as wa:
        assert httpx.post(f"{base}/_sandbox/fail-next", json={"accept": True, "delay": 1.5}).status_code == 200
        with pytest.raises(UnknownOutcomeError) as caught:
            wa.send(OutboundRequest(recipient_id="491701", body="hi", idempotency_key="k-slow"))
        assert caught.value.code == "unknown_outcome" and not caught.value.retry_is_safe
        # the sandbox took it: its count per idempotency key proves the message went out once
        assert httpx.get(f"{base}/_sandbox/keys").json()["counts"] == {"k-slow": 1}
        # the same timeout on a call that delivers nothing to a person (no ``once``) is simply retryable
        httpx.post(f"{base}/_sandbox/fail-next", json={"code": 131000, "status": 500, "delay": 1.5})
        with pytest.raises(RetryableError) as retry:
            wa.graph.call("POST", f"{PHONE_ID}/messages", json_body={"messaging_product": "whatsapp", "to": "1"})
        assert not isinstance(retry.value, UnknownOutcomeError)


def test_a_429_storm_says_when_to_come_back() -> None:
    config = SandboxConfig(phone_number_id=PHONE_ID, access_token="tok", app_secret="s", webhook_url="",
                           send_statuses=False, enforce_window=False)
    with run_asgi(create_app(config)) as base, _connector(base, 5.0) as wa:
        httpx.post(f"{base}/_sandbox/fail-next", json={"code": 130429, "status": 429, "retry_after": 3, "count": 2})
        for _ in range(2):
            with pytest.raises(RetryableError) as caught:
                wa.send(OutboundRequest(recipient_id="491701", body="hi", idempotency_key="k-429"))
            assert caught.value.retry_after == 3.0 and caught.value.code == "130429"
        wa.send(OutboundRequest(recipient_id="491701", body="hi", idempotency_key="k-429"))
        assert httpx.get(f"{base}/_sandbox/keys").json()["counts"] == {"k-429": 1}


def test_nobody_listening_means_nothing_was_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connect is refused
    with _connector(f"http://127.0.0.1:{port}") as wa, pytest.raises(RetryableError) as caught:
        wa.send(OutboundRequest(recipient_id="491701", body="hi", idempotency_key="k"))
    assert not isinstance(caught.value, UnknownOutcomeError)


def test_telegram_deduplicates_a_retry_by_random_id() -> None:
    world = FakeTelegramWorld()
    world.add_account("+15550002222", login_code="1")
    gw = FakeTelegramGateway(world)
    submit_code(gw, start_login(gw, "+15550002222"), "1")
    ada = world.add_private_chat("+15550002222", "Ada")
    request = OutboundRequest(recipient_id=str(ada.marked_id), body="once", idempotency_key="tg-k")
    assert random_id_for("tg-k") == random_id_for("tg-k") != random_id_for("tg-k2")
    world.inject_lost_answer("send_text")
    with pytest.raises(UnknownOutcomeError) as caught:
        send_telegram(gw, request, peer=ada)
    assert caught.value.retry_is_safe  # the retry carries the same random_id
    with pytest.raises(AlreadySent):
        send_telegram(gw, request, peer=ada)
    chat = world.accounts["+15550002222"].chats[ada.marked_id]
    assert [m.text for m in chat.messages if m.out] == ["once"]
