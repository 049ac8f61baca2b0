"""Messenger / Instagram Send API, sender actions, Conversations API paging and Graph error mapping,
all over real HTTP against a local fake of the Graph API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from connectors import base as errors
from connectors.meta import MetaConnector, history_pending
from connectors.registry import get_connector
from switchboard.types import AttachmentRef, OutboundRequest
from tests.fakes.graph import FakeGraph, Forced
from tests.fakes.server import run_asgi

TOKEN = "page-token"
PAGE = "1001"
T0 = 1_700_000_000.0


@dataclass
class Rig:
    graph: FakeGraph
    connector: MetaConnector
    base_url: str


def _rig(provider: str = "messenger", http: httpx.Client | None = None) -> Iterator[Rig]:
    graph = FakeGraph(token=TOKEN, account_id=PAGE)
    with run_asgi(graph.app) as base_url:
        graph.base_url = base_url
        key = "ig_user_id" if provider == "instagram" else "page_id"
        connector = get_connector(provider, external_id=None, http=http, credentials={
            "page_access_token": TOKEN, "app_secret": "s", key: PAGE, "api_base_url": base_url})
        assert isinstance(connector, MetaConnector)
        with connector:
            yield Rig(graph, connector, base_url)


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from _rig()


def test_send_text_response_and_human_agent_tag(rig: Rig) -> None:
    res = rig.connector.send(OutboundRequest(recipient_id="u1", body="hello", idempotency_key="k1"))
    assert res.provider_message_id.startswith("m_sent_")
    tagged = rig.connector.send(OutboundRequest(recipient_id="u1", body="later", tag="HUMAN_AGENT"))
    assert tagged.provider_message_id != res.provider_message_id
    first, second = (r["json"] for r in rig.graph.requests)
    assert first == {"recipient": {"id": "u1"}, "messaging_type": "RESPONSE",
                     "message": {"text": "hello", "metadata": "k1"}}
    assert second["messaging_type"] == "MESSAGE_TAG" and second["tag"] == "HUMAN_AGENT"
    assert rig.graph.requests[0]["path"] == f"/v21.0/{PAGE}/messages"


def test_send_attachment_and_sender_actions(rig: Rig) -> None:
    rig.connector.send(OutboundRequest(recipient_id="u2", attachments=(
        AttachmentRef(kind="document", url="https://example.com/a.pdf"),)))
    rig.connector.show_typing("u2", "m_x")
    rig.connector.mark_read("u2", "m_x")
    att, typing, seen = (r["json"] for r in rig.graph.requests)
    assert att["message"] == {"attachment": {"type": "file", "payload": {"url": "https://example.com/a.pdf",
                                                                           "is_reusable": True}}}
    assert typing == {"recipient": {"id": "u2"}, "sender_action": "typing_on"}
    assert seen["sender_action"] == "mark_seen"
    with pytest.raises(errors.PermanentError) as info:
        rig.connector.mark_read("", "m_x")
    assert info.value.code == "needs_recipient"


@pytest.mark.parametrize("request_", [
    OutboundRequest(recipient_id="u", body="x" * 2001),
    OutboundRequest(recipient_id="u", body="x", attachments=(AttachmentRef(kind="image", url="https://e/x"),)),
    OutboundRequest(recipient_id="u", template={"name": "t"}),
    OutboundRequest(recipient_id="u"),
    OutboundRequest(recipient_id="", body="x"),
])
def test_invalid_requests_fail_before_any_http(rig: Rig, request_: OutboundRequest) -> None:
    with pytest.raises(errors.PermanentError):
        rig.connector.send(request_)
    assert rig.graph.requests == []


GRAPH_ERRORS = [
    (Forced(400, {"error": {"message": "(#10) outside window", "code": 10, "error_subcode": 2018278}}),
     errors.OutsideWindowError, "10"),
    (Forced(400, {"error": {"message": "rate", "code": 613}}), errors.RateLimited, "613"),
    (Forced(400, {"error": {"message": "Re-engagement", "code": 131047}}), errors.OutsideWindowError, "131047"),
    (Forced(400, {"error": {"message": "Rate limit hit", "code": 130429}}, headers={"Retry-After": "7"}),
     errors.RateLimited, "130429"),
    (Forced(400, {"error": {"message": "pair", "code": 131056}}), errors.RateLimited, "131056"),
    (Forced(400, {"error": {"message": "undeliverable", "code": 131026}}), errors.PermanentError, "131026"),
    (Forced(401, {"error": {"message": "expired", "type": "OAuthException", "code": 190}}),
     errors.AuthenticationError, "190"),
    (Forced(400, {"error": {"message": "unavailable", "code": 551}}), errors.PermanentError, "551"),
    (Forced(500, {"error": {"message": "oops", "code": 1}}), errors.RetryableError, "1"),
    (Forced(503, "<html>bad gateway</html>"), errors.RetryableError, "http_503"),
    (Forced(404, "not found"), errors.PermanentError, "http_404"),
    (Forced(429, "slow down"), errors.RateLimited, "http_429"),
    (Forced(200, "not json"), errors.RetryableError, "bad_response"),
]


@pytest.mark.parametrize(("forced", "error_type", "code"), GRAPH_ERRORS)
def test_graph_errors_are_classified(rig: Rig, forced: Forced, error_type: type[errors.ConnectorError],
                                     code: str) -> None:
    rig.graph.forced.append(forced)
    with pytest.raises(error_type) as info:
        rig.connector.send(OutboundRequest(recipient_id="u3", body="x"))
    err = info.value
    assert type(err) is error_type and err.code == code
    assert err.retryable is issubclass(error_type, errors.RetryableError)
    if code == "130429":
        assert isinstance(err, errors.RateLimited) and err.retry_after == 7.0
    if isinstance(forced.body, dict):
        assert forced.body["error"]["message"] in err.message


def test_a_send_answered_too_late_is_unknown_and_a_refused_connection_is_retryable() -> None:
    with httpx.Client(timeout=0.2) as client:
        for rig in _rig(http=client):
            rig.graph.forced.append(Forced(200, {"message_id": "late"}, delay=0.6))
            with pytest.raises(errors.UnknownOutcomeError) as info:  # it may have been sent: no blind retry
                rig.connector.send(OutboundRequest(recipient_id="u", body="x"))
            assert info.value.code == "unknown_outcome" and not info.value.retryable
        assert not client.is_closed  # a shared client belongs to the caller
    dead = MetaConnector(provider="messenger", account_id=PAGE, page_access_token=TOKEN, app_secret="s",
                         api_base_url="http://127.0.0.1:9")
    with dead, pytest.raises(errors.RetryableError) as refused:  # nothing was sent
        dead.send(OutboundRequest(recipient_id="u", body="x"))
    assert refused.value.code == "network"


def test_pull_history_pages_and_is_incremental() -> None:
    for rig in _rig("instagram"):
        g = rig.graph
        for i in range(3):  # three customers, each with 3 messages (nested paging at 2 per page)
            g.add_message(f"c{i}", T0 + i * 100, f"hello {i}", name=f"Cust {i}")
            g.add_message(f"c{i}", T0 + i * 100 + 10, f"reply {i}", outbound=True, name=f"Cust {i}")
            g.add_message(f"c{i}", T0 + i * 100 + 20, f"thanks {i}", name=f"Cust {i}")
        messages, cursor = rig.connector.pull_history(None, page_size=2)
        assert len(messages) == 9 and cursor and not history_pending(cursor)
        assert [m.sent_at for m in messages] == sorted(m.sent_at for m in messages)
        out = [m for m in messages if m.direction == "OUTBOUND"]
        assert len(out) == 3 and all(m.author_kind == "agent" and m.contact.provider_contact_id.startswith("c")
                                     for m in out)
        inbound = next(m for m in messages if m.body == "hello 1")
        assert inbound.contact.display_name == "Cust 1" and inbound.direction == "INBOUND"
        assert g.requests[0]["params"]["platform"] == "instagram"

        # nothing new: one request, nothing returned except boundary duplicates
        again, cursor2 = rig.connector.pull_history(cursor, page_size=2)
        assert {m.body for m in again} <= {"thanks 2"}
        # a new message in an old conversation is picked up
        g.add_message("c0", T0 + 1000, "one more thing", name="Cust 0")
        newer, cursor3 = rig.connector.pull_history(cursor2, page_size=2)
        assert "one more thing" in {m.body for m in newer}
        assert all(m.sent_at.timestamp() >= T0 + 220 for m in newer)

        # a page limit leaves a resumable cursor
        partial, mid_cursor = rig.connector.pull_history(None, page_size=1, max_pages=1)
        assert history_pending(mid_cursor)
        rest, final = rig.connector.pull_history(mid_cursor, page_size=1, max_pages=10)
        assert not history_pending(final)
        assert {m.provider_message_id for m in partial + rest} >= {m.provider_message_id for m in messages}


def test_pull_history_empty_account_and_bad_cursor(rig: Rig) -> None:
    assert rig.connector.pull_history(None) == ([], None)
    with pytest.raises(errors.PermanentError) as info:
        rig.connector.pull_history("%%%garbage")
    assert info.value.code == "bad_cursor"
