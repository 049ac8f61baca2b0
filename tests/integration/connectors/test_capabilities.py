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
           "read receipts and typing": ("mark_read", "show_typing"), "templates": ("list_templates",)}


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
