"""The provider table (what each connector can do) and the shared Graph client, over real HTTP."""

from __future__ import annotations

from contextlib import closing

import httpx
import pytest

from connectors.base import (
    CAPABILITIES,
    SEND,
    TEMPLATES,
    ConnectorError,
    PermanentError,
    RateLimited,
    Unsupported,
)
from connectors.graph import GraphClient
from connectors.registry import PROVIDERS, get_connector, port, supports
from tests.fakes.graph import FakeGraph, Forced
from tests.fakes.server import run_asgi

CREDS = {"access_token": "t", "page_access_token": "t", "app_secret": "s", "phone_number_id": "1",
         "page_id": "2", "api_id": 1, "api_hash": "h", "session": "fake:x",
         "account_sid": "AC1", "auth_token": "t", "from_number": "+14155550100",  # twilio
         "from_address": "support@example.com", "smtp_host": "127.0.0.1"}  # email
# the methods each capability's port promises
METHODS = {"webhooks": ("verify_signature", "verify_challenge", "parse_webhook"), "send": ("send",),
           "media": ("fetch_media",), "history": ("pull_history", "history_pending"),
           "read receipts and typing": ("mark_read", "show_typing"), "templates": ("list_templates",),
           "connection test": ("check_identity",), "token expiry": ("token_expiry",)}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_the_table_says_what_each_connector_implements(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_TELEGRAM_FAKE", "1")
    connector = get_connector(provider, external_id="9", credentials=CREDS)
    try:
        assert connector.provider == provider
        for capability in CAPABILITIES:
            has = all(callable(getattr(connector, m, None)) for m in METHODS[capability.name])
            assert supports(provider, capability) == has, (provider, capability.name)
            if not has:
                with pytest.raises(Unsupported):
                    port(connector, capability)
    finally:
        connector.close()
    assert not supports("fax", SEND)


def test_whatsapp_lists_templates_across_pages() -> None:
    graph = FakeGraph(token="tok", account_id="waba")
    graph.templates = [{"name": f"t{i}", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
                        "components": [{"type": "BODY", "text": f"Hello {i}"}]} for i in range(3)]
    with run_asgi(graph.app) as base:
        graph.base_url = base
        creds = {"access_token": "tok", "app_secret": "s", "api_base_url": base}
        with closing(get_connector("whatsapp", external_id="1", credentials={**creds, "waba_id": "waba"})) as wa:
            templates = port(wa, TEMPLATES).list_templates()
        with closing(get_connector("whatsapp", external_id="1", credentials=creds)) as no_waba, \
                pytest.raises(PermanentError, match="waba_id"):
            port(no_waba, TEMPLATES).list_templates()
    assert [(t.name, t.status, t.components[0]["text"]) for t in templates] == [
        ("t0", "APPROVED", "Hello 0"), ("t1", "APPROVED", "Hello 1"), ("t2", "APPROVED", "Hello 2")]
    assert len(graph.requests) == 2  # two pages


def test_graph_client_maps_errors_and_leaves_a_shared_client_open() -> None:
    graph = FakeGraph(token="tok", account_id="p")
    with run_asgi(graph.app) as base, httpx.Client() as shared:
        with GraphClient(token="wrong", api_base_url=base, http=shared) as client:
            with pytest.raises(ConnectorError) as info:
                client.call("GET", "p/conversations")
            assert info.value.code == "190"  # the platform's code, kept
            graph.forced.append(Forced(429, {"error": {"message": "slow down", "code": 4}}, {"retry-after": "7"}))
        with GraphClient(token="tok", api_base_url=base, http=shared) as client:
            with pytest.raises(RateLimited) as limited:
                client.call("GET", "p/conversations")
            assert limited.value.retry_after == 7.0 and client.url(f"{base}/x") == f"{base}/x"
        assert not shared.is_closed


def test_graph_identity_and_token_expiry_over_http() -> None:
    from datetime import UTC, datetime

    from connectors.base import IDENTITY, TOKEN_EXPIRY, AuthenticationError

    graph = FakeGraph(token="tok", account_id="555")
    graph.account_name = "Acme Support"
    graph.token_expires_at, graph.data_access_expires_at = 1_900_000_000, 1_800_000_000
    with run_asgi(graph.app) as base:
        creds = {"access_token": "tok", "page_access_token": "tok", "app_secret": "s", "api_base_url": base,
                 "page_id": "555"}
        with closing(get_connector("whatsapp", external_id="555", credentials=creds)) as wa, \
                closing(get_connector("messenger", external_id="555", credentials=creds)) as page:
            assert port(wa, IDENTITY).check_identity().describe() == "Acme Support (555)"
            assert port(page, IDENTITY).check_identity().account_id == "555"
            assert graph.requests[-2]["path"].endswith("/555") and graph.requests[-1]["path"].endswith("/me")
            # the earlier of the two expiries; 0 would mean never
            assert port(wa, TOKEN_EXPIRY).token_expiry() == datetime.fromtimestamp(1_800_000_000, tz=UTC)
            graph.token_valid = False
            with pytest.raises(AuthenticationError, match="expired"):
                port(page, TOKEN_EXPIRY).token_expiry()
        with closing(get_connector("whatsapp", external_id="555", credentials={**creds, "access_token": "old"})) as old, \
                pytest.raises(AuthenticationError) as refused:
            port(old, IDENTITY).check_identity()
        assert refused.value.code == "190"


def test_telegram_connection_test_sees_a_revoked_session() -> None:
    from connectors.base import IDENTITY, AuthenticationError
    from connectors.telegram import TelegramConnector
    from connectors.telegram.fake import FakeTelegramGateway, FakeTelegramWorld

    world = FakeTelegramWorld()
    world.add_account("+4915111111111", "Support", last_name="Desk")
    gateway = FakeTelegramGateway(world)
    step = gateway.send_code("+4915111111111")
    gateway.sign_in_code("+4915111111111", "12345", step.phone_code_hash or "")
    session = gateway.session_string()
    connector = TelegramConnector({"api_id": 1, "api_hash": "h", "session": session},
                                  gateway_factory=lambda creds: FakeTelegramGateway(world, str(creds["session"])))
    with closing(connector):
        assert "Support Desk" in (port(connector, IDENTITY).check_identity().name or "")
        world.revoke_sessions("+4915111111111")
        with pytest.raises(AuthenticationError, match="no longer logged in"):
            port(connector, IDENTITY).check_identity()
