"""A channel's life: pause/resume (deliveries kept, caught up in order), remove (410, history kept),
credentials changed, connection tests, refused and expiring credentials (status ``error``, banner
warnings, the outbox stops claiming), the scheduled expiry check.

Real parts only: signed deliveries through the receiver over HTTP, the inbound and sending workflows,
a Graph API fake over HTTP, the embedded PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from switchboard.auth.audit import list_audit
from switchboard.db.schema import Message, WebhookEvent
from switchboard.errors import Conflict, InvalidInput, NotFound
from switchboard.http.receiver import create_app
from switchboard.services import channel_lifecycle as lifecycle
from switchboard.services import conversations, outbox
from switchboard.services.channels import (
    ChannelView,
    channel_credentials,
    create_channel,
    get_channel,
    list_channels,
)
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from switchboard.workflows.channel_checks import check_connection, check_credentials_once
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import process_webhooks_once
from switchboard.workflows.sending import drain_outbox, send_outbox_once
from tests.fakes.graph import FakeGraph, Forced
from tests.fakes.server import run_asgi

SECRET = "lifecycle-app-secret"
NUMBER = "100200300"
TOKEN = "good-token"


@dataclass
class Rig:
    engine: Engine
    base_url: str
    graph: FakeGraph
    graph_url: str
    org: int
    admin: Actor
    channel: ChannelView
    connectors: ConnectorCache
    key: bytes
    replier: Actor | None = None  # the manager who accepted the conversation and replies

    def post(self, body: bytes) -> httpx.Response:
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return httpx.post(self.url(), content=body, headers={"X-Hub-Signature-256": sig,
                                                             "Content-Type": "application/json"})

    def url(self) -> str:
        return f"{self.base_url}/webhooks/whatsapp/{self.channel.webhook_key}"

    def call(self, service: Any, *args: Any, **kwargs: Any) -> Any:
        with UnitOfWork(self.engine) as uow:
            result = service(uow, self.admin, *args, **kwargs)
            uow.commit()
        return result

    def process(self) -> int:
        return process_webhooks_once(self.engine, self.connectors).processed

    def send(self) -> Any:
        self.connectors.forget(self.channel.id)
        return send_outbox_once(self.engine, self.connectors)

    def status(self) -> str:
        with UnitOfWork(self.engine) as uow:
            return get_channel(uow, self.channel.id).status


def message(wamid: str, text: str, ts: int) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550100", "phone_number_id": NUMBER},
            "contacts": [{"profile": {"name": "Customer"}, "wa_id": "4915100000001"}],
            "messages": [{"from": "4915100000001", "id": wamid, "timestamp": str(ts), "type": "text",
                          "text": {"body": text}}]}}]}]}).encode()


@pytest.fixture
def rig(engine: Engine) -> Iterator[Rig]:
    from tests.integration.services.conftest import add_user

    key = get_settings().secret_key_bytes()
    graph = FakeGraph(token=TOKEN, account_id=NUMBER)
    graph.account_name = "Acme Support"
    with run_asgi(graph.app) as graph_url:
        with UnitOfWork(engine) as uow:
            org = create_organization(uow, "Lifecycle Co")
            channel = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WhatsApp",
                                     secret_key=key, external_id=NUMBER,
                                     credentials={"app_secret": SECRET, "access_token": TOKEN,
                                                  "verify_token": "vt", "api_base_url": graph_url})
            uow.commit()
        admin = add_user(engine, org, "admin@life.test", "admin")
        connectors = ConnectorCache(engine, key, ttl=0.0)
        with run_asgi(create_app(engine, key)) as base:
            yield Rig(engine, base, graph, graph_url, org, admin, channel, connectors, key)
        connectors.close()


def _bodies(engine: Engine) -> list[str | None]:
    with UnitOfWork(engine) as uow:
        return list(uow.session.execute(
            select(Message.body).where(Message.direction == "INBOUND").order_by(Message.id)).scalars())


def _audited(rig: Rig) -> list[str]:
    with UnitOfWork(rig.engine) as uow:
        return [e.action for e in list_audit(uow, rig.admin)]


def _reply(rig: Rig, text: str, key: str) -> int:
    from tests.integration.services.conftest import add_user

    with UnitOfWork(rig.engine) as uow:
        conv = uow.session.execute(select(Message.conversation_id)).scalars().first()
        uow.commit()
    assert conv is not None
    if rig.replier is None:
        rig.replier = add_user(rig.engine, rig.org, "replier@life.test", "manager")
        with UnitOfWork(rig.engine) as uow:
            conversations.accept(uow, rig.replier, conv)
            uow.commit()
    with UnitOfWork(rig.engine) as uow:
        msg = outbox.enqueue_reply(uow, rig.replier, conv, text, idempotency_key=key)
        uow.commit()
    return msg.id


def test_paused_channel_keeps_deliveries_and_catches_up_in_order(rig: Rig) -> None:
    now = int(datetime.now(UTC).timestamp())
    assert rig.post(message("wamid.0", "before", now - 10)).status_code == 200
    assert rig.process() == 1
    message_id = _reply(rig, "queued before the pause", "r1")

    rig.call(lifecycle.pause_channel, rig.channel.id)
    rig.call(lifecycle.pause_channel, rig.channel.id)  # idempotent
    for i in range(3):
        assert rig.post(message(f"wamid.{i + 1}", f"while paused {i + 1}", now + i)).status_code == 200
    assert rig.process() == 0  # stored, not processed
    stats = rig.send()
    assert stats.claimed == 0 and not [r for r in rig.graph.requests if r["path"].endswith("/messages")]
    with UnitOfWork(rig.engine) as uow:
        waiting = uow.session.execute(select(WebhookEvent.status).where(WebhookEvent.channel_id == rig.channel.id)
                                      .order_by(WebhookEvent.id)).scalars().all()
    assert waiting == ["PROCESSED", "RECEIVED", "RECEIVED", "RECEIVED"]

    view = rig.call(lifecycle.resume_channel, rig.channel.id)
    assert view.status == "active"
    assert rig.process() == 3
    assert _bodies(rig.engine) == ["before", "while paused 1", "while paused 2", "while paused 3"]
    assert rig.send().sent == 1
    with UnitOfWork(rig.engine) as uow:
        assert uow.session.get(Message, message_id).status == "SENT"  # type: ignore[union-attr]
    assert {"channel.paused", "channel.resumed"} <= set(_audited(rig))


def test_removed_channel_refuses_webhooks_with_410_and_keeps_history(rig: Rig) -> None:
    now = int(datetime.now(UTC).timestamp())
    assert rig.post(message("wamid.h", "history", now)).status_code == 200
    assert rig.process() == 1
    app = create_app(rig.engine, rig.key)  # a fresh receiver: no cached key
    rig.call(lifecycle.remove_channel, rig.channel.id)
    rig.call(lifecycle.remove_channel, rig.channel.id)  # idempotent
    with run_asgi(app) as base:
        rig.base_url = base
        assert rig.post(message("wamid.late", "too late", now + 1)).status_code == 410
        assert httpx.get(rig.url(), params={"hub.mode": "subscribe", "hub.verify_token": "vt",
                                            "hub.challenge": "1"}).status_code == 410
    assert _bodies(rig.engine) == ["history"]  # history kept
    with UnitOfWork(rig.engine) as uow:
        assert [c.key for c in list_channels(uow, rig.org)] == []  # never listed for work
        assert [c.status for c in list_channels(uow, rig.org, include_removed=True)] == ["removed"]
        assert uow.session.execute(select(WebhookEvent).where(WebhookEvent.body.contains(b"too late"))).first() is None
    for change, args in ((lifecycle.pause_channel, ()), (lifecycle.rename_channel, ("New",)),
                         (lifecycle.update_credentials, (rig.key, {"access_token": "x"}))):
        with pytest.raises(Conflict, match="removed"):
            rig.call(change, rig.channel.id, *args)
    with pytest.raises(Conflict, match="removed"):
        rig.call(create_channel, key="wa", provider="whatsapp", name="WhatsApp", secret_key=rig.key)
    assert "channel.removed" in _audited(rig)


def test_adding_an_existing_key_with_other_settings_points_to_update(rig: Rig) -> None:
    same = rig.call(create_channel, key="wa", provider="whatsapp", name="WhatsApp", secret_key=rig.key,
                    external_id=NUMBER, credentials={"access_token": TOKEN})
    assert same.id == rig.channel.id  # asking for the same channel again is idempotent
    with pytest.raises(Conflict, match="credential access_token.*channel update wa"):
        rig.call(create_channel, key="wa", provider="whatsapp", name="WhatsApp", secret_key=rig.key,
                 credentials={"access_token": "a-new-token"})
    with pytest.raises(Conflict, match="provider whatsapp"):
        rig.call(create_channel, key="wa", provider="messenger", name="WhatsApp", secret_key=rig.key)


def test_credentials_renaming_and_rate_are_changed_and_audited(rig: Rig) -> None:
    view = rig.call(lifecycle.update_credentials, rig.channel.id, rig.key, {"access_token": "rotated", "verify_token": ""})
    with UnitOfWork(rig.engine) as uow:
        creds = channel_credentials(uow, Actor.system(rig.org), rig.channel.id, rig.key)
    assert creds["access_token"] == "rotated" and creds["app_secret"] == SECRET and "verify_token" not in creds
    assert view.status == "active"
    with pytest.raises(InvalidInput, match="not this channel's number"):
        rig.call(lifecycle.update_credentials, rig.channel.id, rig.key, {"phone_number_id": "999"})
    with pytest.raises(InvalidInput):
        rig.call(lifecycle.update_credentials, rig.channel.id, rig.key, {})
    assert rig.call(lifecycle.rename_channel, rig.channel.id, " Front desk ").name == "Front desk"
    assert rig.call(lifecycle.set_rate_limit, rig.channel.id, 0.5).rate_limit_per_second == 0.5
    with UnitOfWork(rig.engine) as uow:
        entries = list_audit(uow, rig.admin)
    changed = next(e for e in entries if e.action == "channel.credentials_changed")
    assert changed.details["credentials"] == ["access_token", "verify_token"]
    assert "rotated" not in json.dumps([e.details for e in entries])  # names, never values
    assert {"channel.renamed", "channel.rate_limit_changed"} <= {e.action for e in entries}
    other_org_admin = Actor.system(rig.org + 1000)
    with UnitOfWork(rig.engine) as uow, pytest.raises(NotFound):
        lifecycle.pause_channel(uow, other_org_admin, rig.channel.id)


def test_connection_test_is_shown_recorded_and_clears_an_error(rig: Rig) -> None:
    result = check_connection(rig.engine, rig.connectors, rig.admin, rig.channel.id)
    assert result.ok and "Acme Support" in result.result
    assert result.channel.check_result is not None and result.channel.check_result.startswith("ok: connected as")
    assert rig.graph.requests[-1]["path"].endswith(f"/{NUMBER}")

    rig.call(lifecycle.update_credentials, rig.channel.id, rig.key, {"access_token": "revoked"})
    result = check_connection(rig.engine, rig.connectors, rig.admin, rig.channel.id)
    assert not result.ok and "credentials refused" in result.result and "190" in result.result
    assert result.channel.status == "error" and result.channel.checked_at is not None

    rig.call(lifecycle.update_credentials, rig.channel.id, rig.key, {"access_token": TOKEN})
    assert rig.status() == "active"  # new credentials: tried again
    rig.graph.forced.append(Forced(401, {"error": {"message": "Session has expired", "code": 190}}))
    assert not check_connection(rig.engine, rig.connectors, rig.admin, rig.channel.id).ok
    assert rig.status() == "error"
    assert check_connection(rig.engine, rig.connectors, rig.admin, rig.channel.id).ok
    assert rig.status() == "active"  # a passing test clears the error
    assert _audited(rig).count("channel.connection_tested") == 4


def test_refused_token_puts_the_channel_in_error_instead_of_failing_every_send(rig: Rig) -> None:
    now = int(datetime.now(UTC).timestamp())
    rig.post(message("wamid.e", "hello", now))
    rig.process()
    first = _reply(rig, "one", "e1")
    rig.call(lifecycle.update_credentials, rig.channel.id, rig.key, {"access_token": "expired"})
    stats = rig.send()
    assert stats.failed == 1 and rig.status() == "error"
    second = _reply(rig, "two", "e2")
    third = _reply(rig, "three", "e3")
    assert rig.send().claimed == 0  # not one more call with refused credentials
    with UnitOfWork(rig.engine) as uow:
        statuses = {m: uow.session.get(Message, m).status for m in (first, second, third)}  # type: ignore[union-attr]
        warnings = lifecycle.credential_warnings(uow, rig.admin)
        channel = get_channel(uow, rig.channel.id)
    assert statuses == {first: "FAILED", second: "PENDING", third: "PENDING"}
    assert channel.last_error is not None and "190" in channel.last_error
    assert [w.channel_key for w in warnings] == ["wa"] and "credentials refused" in warnings[0].message
    assert "channel.credentials_refused" in _audited(rig)

    rig.call(lifecycle.update_credentials, rig.channel.id, rig.key, {"access_token": TOKEN})
    rig.connectors.forget(rig.channel.id)
    assert drain_outbox(rig.engine, rig.connectors, seconds=30, idle_seconds=0.5).sent == 2  # spaced by the send rate
    with UnitOfWork(rig.engine) as uow:
        assert lifecycle.credential_warnings(uow, rig.admin) == []


def test_scheduled_expiry_check_warns_ahead_and_catches_invalid_tokens(rig: Rig) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rig.graph.token_expires_at = int((now + timedelta(days=30)).timestamp())
    stats = check_credentials_once(rig.engine, rig.connectors, warn_days=14, now=now)
    assert (stats.checked, stats.expiring, stats.refused) == (1, 0, 0)
    with UnitOfWork(rig.engine) as uow:
        assert get_channel(uow, rig.channel.id).credentials_expire_at == now + timedelta(days=30)
        assert lifecycle.credential_warnings(uow, rig.admin, within_days=14, now=now) == []

    rig.graph.token_expires_at = int((now + timedelta(days=5)).timestamp())
    stats = check_credentials_once(rig.engine, rig.connectors, warn_days=14, now=now)
    assert stats.expiring == 1
    with UnitOfWork(rig.engine) as uow:
        warnings = lifecycle.credential_warnings(uow, rig.admin, within_days=14, now=now)
    assert len(warnings) == 1 and "expires on" in warnings[0].message and "in 5 days" in warnings[0].message
    check_credentials_once(rig.engine, rig.connectors, warn_days=14, now=now)
    assert _audited(rig).count("channel.credentials_expiry") == 2  # only when the date changed

    rig.graph.token_valid = False
    stats = check_credentials_once(rig.engine, rig.connectors, warn_days=14, now=now)
    assert stats.refused == 1 and rig.status() == "error"

    rig.call(lifecycle.pause_channel, rig.channel.id)  # a paused channel is not called (as by its syncs)
    rig.graph.token_valid = True
    stats = check_credentials_once(rig.engine, rig.connectors, now=now)
    assert rig.status() == "paused" and (stats.checked, stats.refused, stats.errors) == (0, 0, [])
