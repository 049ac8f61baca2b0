"""The sandbox's SMS customers over real HTTP: the sandbox (Twilio API under ``/twilio``) posts a simulated
customer's signed SMS to the product's receiver, the webhook worker puts it in the inbox, the outbox sends
the reply through the sandbox's Messages API, and the sandbox's status callbacks mark it delivered."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx
from sqlalchemy import Engine

from connectors.sandbox import SandboxConfig, create_app
from switchboard.db.schema import Message
from switchboard.http.receiver import create_app as create_receiver
from switchboard.services.channels import create_channel, set_channel_credentials
from switchboard.services.inbox_views import list_conversations
from switchboard.services.organizations import create_organization
from switchboard.services.outbox import enqueue_bot_reply
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import process_webhooks_once
from switchboard.workflows.sending import drain_outbox
from tests.fakes.server import run_asgi

SID = "AC" + "7" * 32
TOKEN = "sms-sandbox-token"
SHOP = "+14155550100"
T = TypeVar("T")


def _until(probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_an_sms_customer_reaches_the_inbox_and_the_reply_is_delivered(engine: Engine) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "SMS sandbox shop")
        system = Actor.system(org)
        ch = create_channel(uow, system, key="sms", provider="twilio", name="SMS (sandbox)", secret_key=key,
                            credentials={"account_sid": SID, "auth_token": TOKEN, "from_number": SHOP,
                                         "api_base_url": "http://127.0.0.1:9"})
        uow.commit()
    with run_asgi(create_receiver(engine, key)) as receiver:
        config = SandboxConfig(phone_number_id="1", access_token="wa", app_secret="wa", webhook_url="",
                               speed=100.0, seed=3, sms_auth_token=TOKEN, sms_account_sid=SID,
                               sms_from_number=SHOP, sms_webhook_url=ch.webhook_url(receiver), sms_customers=1)
        with run_asgi(create_app(config)) as sandbox, httpx.Client(base_url=sandbox, timeout=10) as control:
            with UnitOfWork(engine) as uow:
                set_channel_credentials(uow, system, ch.id, key, {
                    "account_sid": SID, "auth_token": TOKEN, "from_number": SHOP,
                    "api_base_url": f"{sandbox}/twilio"})
                uow.commit()
            connectors = ConnectorCache(engine, key, public_base_url=receiver)
            try:
                [customer] = control.get("/_sandbox/state").json()["customers"]
                assert customer["channel"] == "sms" and customer["phone"].startswith("1415")

                def conversation() -> int | None:
                    stats = process_webhooks_once(engine, connectors)
                    assert stats.errors == 0 and stats.rejected == 0, stats
                    with UnitOfWork(engine) as uow:
                        items = list_conversations(uow, system).items
                    return items[0].id if items else None

                conv_id = _until(conversation)  # the customer's signed SMS reached the inbox
                with UnitOfWork(engine) as uow:
                    mid = enqueue_bot_reply(uow, system, conv_id, "Happy to help!", idempotency_key="sms-1").id
                    uow.commit()
                assert drain_outbox(engine, connectors, seconds=20, idle_seconds=0.5).sent == 1
                sent = control.get("/twilio/_sandbox/sent", params={"to": "+" + customer["phone"]}).json()
                [record] = [m for m in sent["messages"] if m["Body"] == "Happy to help!"]
                assert record["From"] == SHOP and record["StatusCallback"] == ch.webhook_url(receiver)

                def delivered() -> str | None:
                    process_webhooks_once(engine, connectors)
                    with UnitOfWork(engine) as uow:
                        m = uow.session.get(Message, mid)
                        assert m is not None
                        return m.status if m.status == "DELIVERED" else None

                assert _until(delivered) == "DELIVERED"  # the sandbox's signed status callbacks applied
                after = control.get("/twilio/_sandbox/sent").json()["messages"]
                assert next(m for m in after if m["sid"] == record["sid"])["statuses"] == [
                    "queued", "sent", "delivered"]
                assert control.get("/_sandbox/state").json()["webhooks"]["failed"] == 0
            finally:
                connectors.close()
