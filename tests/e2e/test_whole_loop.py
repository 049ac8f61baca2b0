"""The whole loop without a browser, over real HTTP and the real embedded PostgreSQL:

sandbox customer → signed webhook → receiver (stored before 200) → process flow → contact,
conversation, message → agent accepts → reply queued → outbox flow → WhatsApp connector → sandbox →
signed status webhooks (sent, delivered, read) → receiver → process flow → message READ.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine, func, select

from connectors.sandbox import SandboxConfig, create_app
from switchboard.auth.users import create_user
from switchboard.db.schema import Message, WebhookEvent
from switchboard.http.receiver import create_app as create_receiver
from switchboard.policy import actor_for_user
from switchboard.services import conversations, inbox_views, outbox
from switchboard.services.channels import create_channel, grant_channel_permission, set_channel_credentials
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import process_webhooks_once
from switchboard.workflows.sending import send_outbox_once
from tests.fakes.server import run_asgi
from tests.helpers import assert_rows_agree_with_their_conversation

APP_SECRET = "sandbox-app-secret"
TOKEN = "sandbox-token"
PHONE_ID = "100000000000001"


@dataclass
class Loop:
    engine: Engine
    key: bytes
    receiver_url: str
    sandbox_url: str
    webhook_url: str
    channel_id: int
    agent_id: int
    other_agent_id: int


@pytest.fixture
def loop(engine: Engine) -> Iterator[Loop]:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Loop Co", "Europe/Berlin")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="sandbox", name="WhatsApp sandbox", secret_key=key,
                            external_id=PHONE_ID)
        agent = create_user(uow, org, email="alice@loop.test", name="Alice", role="agent", secret_key=key,
                            password="correct horse battery")
        other = create_user(uow, org, email="bob@loop.test", name="Bob", role="agent", secret_key=key,
                            password="correct horse battery")
        for uid in (agent.user_id, other.user_id):
            grant_channel_permission(uow, Actor.system(org), user_id=uid, channel_id=ch.id, can_view=True,
                                     can_send=True)
        uow.commit()
    with run_asgi(create_receiver(engine, key)) as receiver_url:
        webhook_url = f"{receiver_url}/webhooks/sandbox/{ch.webhook_key}"
        config = SandboxConfig(phone_number_id=PHONE_ID, access_token=TOKEN, app_secret=APP_SECRET,
                               webhook_url=webhook_url, customers=0, speed=50.0)
        with run_asgi(create_app(config)) as sandbox_url:
            with UnitOfWork(engine) as uow:
                set_channel_credentials(uow, Actor.system(org), ch.id, key, {
                    "access_token": TOKEN, "app_secret": APP_SECRET, "verify_token": "verify-me",
                    "phone_number_id": PHONE_ID, "api_base_url": sandbox_url,
                })
                uow.commit()
            yield Loop(engine, key, receiver_url, sandbox_url, webhook_url, ch.id, agent.user_id,
                       other.user_id)


def _wait(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_customer_message_reply_and_read_receipt(loop: Loop) -> None:
    connectors = ConnectorCache(loop.engine, loop.key)
    try:
        # 1. a simulated customer writes: the sandbox posts a signed webhook to the receiver
        r = httpx.post(f"{loop.sandbox_url}/_sandbox/inbound",
                       json={"from": "4915112345678", "name": "Clara Customer", "text": "Hi, where is my order?"})
        assert r.status_code == 200, r.text
        with UnitOfWork(loop.engine) as uow:
            stored = uow.session.execute(select(func.count()).select_from(WebhookEvent)).scalar_one()
        assert stored == 1  # stored before the sandbox got its 200

        # 2. the flow turns it into a conversation; running it twice changes nothing
        stats = process_webhooks_once(loop.engine, connectors)
        assert stats.processed == 1 and stats.messages_created == 1
        assert process_webhooks_once(loop.engine, connectors).claimed == 0

        with UnitOfWork(loop.engine) as uow:
            alice = actor_for_user(uow, loop.agent_id)
            bob = actor_for_user(uow, loop.other_agent_id)
        with UnitOfWork(loop.engine) as uow:
            page = inbox_views.list_conversations(uow, alice, queue="unassigned")
        assert len(page.items) == 1
        conv = page.items[0]
        assert conv.status == "PENDING" and conv.contact_name == "Clara Customer"

        # 3. accept is race-safe: the second agent gets a conflict
        with UnitOfWork(loop.engine) as uow:
            assert conversations.accept(uow, alice, conv.id).status == "ASSIGNED"
            uow.commit()
        with UnitOfWork(loop.engine) as uow, pytest.raises(Exception, match="(?i)already"):
            conversations.accept(uow, bob, conv.id)

        # 4. reply (a double click with the same idempotency key sends once)
        with UnitOfWork(loop.engine) as uow:
            m1 = outbox.enqueue_reply(uow, alice, conv.id, "It ships today!", idempotency_key="k-1")
            uow.commit()
        with UnitOfWork(loop.engine) as uow:
            m2 = outbox.enqueue_reply(uow, alice, conv.id, "It ships today!", idempotency_key="k-1")
        assert m1.id == m2.id and m1.status == "PENDING"

        # 5. the outbox flow sends it through the WhatsApp connector to the sandbox
        sent = send_outbox_once(loop.engine, connectors)
        assert sent.sent == 1, sent.errors
        outbound = httpx.get(f"{loop.sandbox_url}/_sandbox/sent").json()
        texts = [json.dumps(x) for x in (outbound if isinstance(outbound, list) else outbound.get("messages", []))]
        assert len(texts) == 1 and "It ships today!" in texts[0]

        # 6. the sandbox reports sent → delivered → read with signed webhooks
        def status() -> str:
            process_webhooks_once(loop.engine, connectors)
            with UnitOfWork(loop.engine) as uow:
                return str(uow.session.execute(select(Message.status).where(Message.id == m1.id)).scalar_one())

        _wait(lambda: status() == "READ")
        with UnitOfWork(loop.engine) as uow:
            thread = inbox_views.get_thread(uow, alice, conv.id)
        assert [m.direction for m in thread.items] == ["INBOUND", "OUTBOUND"]
        assert thread.items[1].status == "READ"
        assert_rows_agree_with_their_conversation(loop.engine)
    finally:
        connectors.close()


def test_receiver_rejects_bad_signature_and_unknown_key(loop: Loop) -> None:
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    bad = httpx.post(loop.webhook_url, content=body, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64,
                                                              "Content-Type": "application/json"})
    assert bad.status_code == 401
    missing = httpx.post(loop.webhook_url, content=body)
    assert missing.status_code == 401
    unknown = httpx.post(f"{loop.receiver_url}/webhooks/sandbox/not-a-key", content=body)
    assert unknown.status_code == 404
    # Telegram is pulled, never pushed: its provider has no webhook port, so no URL of it exists
    for method in (httpx.get, httpx.post):
        assert method(f"{loop.receiver_url}/webhooks/telegram/any-key").status_code == 404
    sig = "sha256=" + hmac.new(APP_SECRET.encode(), b"{not json", hashlib.sha256).hexdigest()
    malformed = httpx.post(loop.webhook_url, content=b"{not json", headers={"X-Hub-Signature-256": sig})
    assert malformed.status_code == 400
    with UnitOfWork(loop.engine) as uow:
        rows = uow.session.execute(select(WebhookEvent.status, WebhookEvent.reason).order_by(WebhookEvent.id)).all()
    assert [r.status for r in rows] == ["REJECTED", "REJECTED", "REJECTED"]
    assert "signature" in (rows[0].reason or "") and "JSON" in (rows[2].reason or "")
    huge = httpx.post(loop.webhook_url, content=b"x" * 1_000_001, headers={"X-Hub-Signature-256": sig})
    assert huge.status_code == 413
    health = httpx.get(f"{loop.receiver_url}/health").json()
    assert health["database"] == "ok"


def test_verification_challenge(loop: Loop) -> None:
    ok = httpx.get(loop.webhook_url, params={"hub.mode": "subscribe", "hub.verify_token": "verify-me",
                                             "hub.challenge": "12345"})
    assert ok.status_code == 200 and ok.text == "12345"
    wrong = httpx.get(loop.webhook_url, params={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                                "hub.challenge": "12345"})
    assert wrong.status_code == 403


def test_a_send_whose_result_was_lost_is_not_sent_twice(loop: Loop) -> None:
    """The worker sent the message, then died before recording it. The platform's status webhook
    echoes our idempotency key, so the message is settled as SENT instead of being sent again."""
    from datetime import timedelta

    from switchboard.clock import utcnow
    from switchboard.types import OutboundRequest

    connectors = ConnectorCache(loop.engine, loop.key)
    try:
        r = httpx.post(f"{loop.sandbox_url}/_sandbox/inbound",
                       json={"from": "4917000000", "name": "Eve", "text": "hello?"})
        assert r.status_code == 200, r.text
        assert process_webhooks_once(loop.engine, connectors).messages_created == 1, r.text
        with UnitOfWork(loop.engine) as uow:
            alice = actor_for_user(uow, loop.agent_id)
            conv = inbox_views.list_conversations(uow, alice, queue="unassigned").items[0]
        with UnitOfWork(loop.engine) as uow:
            conversations.accept(uow, alice, conv.id)
            uow.commit()
        with UnitOfWork(loop.engine) as uow:
            msg = outbox.enqueue_reply(uow, alice, conv.id, "exactly once", idempotency_key="once-1")
            uow.commit()
        with UnitOfWork(loop.engine) as uow:
            (job,) = outbox.claim_due(uow)
            uow.commit()
        _, connector = connectors.get(job.channel_id)
        connector.send(OutboundRequest(recipient_id=job.recipient_id, body=job.body,
                                       idempotency_key=job.idempotency_key))  # ...and the worker dies here

        def settled() -> bool:
            process_webhooks_once(loop.engine, connectors)
            with UnitOfWork(loop.engine) as uow:
                return uow.session.execute(select(Message.status).where(Message.id == msg.id)).scalar_one() != "PENDING"

        _wait(settled)
        later = utcnow() + timedelta(minutes=10)  # the lease has long expired
        assert send_outbox_once(loop.engine, connectors, now=later).claimed == 0
        sent = httpx.get(f"{loop.sandbox_url}/_sandbox/sent").json()["messages"]
        assert sum("exactly once" in json.dumps(m) for m in sent) == 1
    finally:
        connectors.close()


def test_a_message_sent_through_the_api_reaches_the_sandbox(loop: Loop) -> None:
    """HTTP API → outbox → sending flow → WhatsApp connector → sandbox → status webhooks → the API shows
    the message READ."""
    from switchboard.db.schema import Channel
    from switchboard.services.api_keys import create_api_key

    with UnitOfWork(loop.engine) as uow:
        org = int(uow.session.execute(select(Channel.organization_id).where(Channel.id == loop.channel_id)).scalar_one())
        key = create_api_key(uow, Actor.system(org), name="shop", scopes=["messages:send", "messages:read"]).key
        uow.commit()
    connectors = ConnectorCache(loop.engine, loop.key)
    auth = {"Authorization": f"Bearer {key}"}
    try:
        r = httpx.post(f"{loop.sandbox_url}/_sandbox/inbound",
                       json={"from": "4915122223333", "name": "Api Anna", "text": "is my order ready?"})
        assert r.status_code == 200, r.text
        assert process_webhooks_once(loop.engine, connectors).messages_created == 1
        r = httpx.post(f"{loop.receiver_url}/api/v1/messages", headers={**auth, "Idempotency-Key": "order-7"},
                       json={"channel": "wa", "to": "+49 151 22223333", "text": "Order 7 is ready for pickup."})
        assert r.status_code == 202, r.text
        sent = r.json()
        assert sent["status"] == "PENDING"
        assert send_outbox_once(loop.engine, connectors).sent == 1
        outbound = httpx.get(f"{loop.sandbox_url}/_sandbox/sent").json()["messages"]
        assert sum("Order 7 is ready" in json.dumps(m) for m in outbound) == 1

        def status() -> str:
            process_webhooks_once(loop.engine, connectors)
            return str(httpx.get(f"{loop.receiver_url}/api/v1/messages/{sent['id']}", headers=auth).json()["status"])

        _wait(lambda: status() == "READ")
        # a retry of the same request is answered from the record and sends nothing more
        again = httpx.post(f"{loop.receiver_url}/api/v1/messages", headers={**auth, "Idempotency-Key": "order-7"},
                           json={"channel": "wa", "to": "+49 151 22223333", "text": "Order 7 is ready for pickup."})
        assert again.status_code == 202 and again.json()["id"] == sent["id"]
        assert send_outbox_once(loop.engine, connectors).claimed == 0
    finally:
        connectors.close()
