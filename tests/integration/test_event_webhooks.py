"""Outgoing event webhooks over real HTTP: subscribed through the API, events of the conversation log
delivered signed to a local receiver (uvicorn on 127.0.0.1), at least once with a stable id, retried
after a failure with each attempt logged, given up after 24 h and the subscription paused after a day
of failures (then resumed); scopes and other organizations as everywhere in the API."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from switchboard.clock import utcnow
from switchboard.db.schema import AuditLog, EventDelivery, EventDeliveryAttempt, EventSubscription
from switchboard.http.receiver import create_app
from switchboard.services.api_keys import create_api_key
from switchboard.services.conversations import accept, complete
from switchboard.services.event_webhooks import record_attempt
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from switchboard.workflows.event_webhooks import deliver_once
from tests.fakes.server import run_asgi
from tests.integration.services.conftest import KEY, World, build_world, committing


@dataclass
class Receiver:
    """A customer's endpoint: records every request, answers ``status``."""

    status: int = 200
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.seen.append((dict(request.headers), await request.body()))
            return PlainTextResponse("ok" if self.status < 300 else "boom: try later", status_code=self.status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@dataclass
class Hooks:
    world: World
    api: str
    hook_url: str
    receiver: Receiver
    key: str
    client: httpx.Client

    def call(self, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        return self.client.request(method, f"{self.api}/api/v1{path}",
                                   headers={"Authorization": f"Bearer {key or self.key}"}, **kw)

    def deliver(self) -> Any:
        return deliver_once(self.world.engine, KEY, self.client)


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> dict[str, Any]:
    """What docs/api.md tells receivers to do."""
    parts = dict(p.split("=", 1) for p in headers["switchboard-signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"]), "bad signature"
    assert abs(int(utcnow().timestamp()) - int(parts["t"])) <= tolerance_s
    return dict(json.loads(body))


@pytest.fixture
def hooks(engine: Engine) -> Iterator[Hooks]:
    world = build_world(engine)
    receiver = Receiver()
    with committing(engine) as u:
        key = create_api_key(u, Actor.system(world.org), name="crm", scopes=["webhooks:manage"]).key
    with run_asgi(create_app(engine, KEY)) as api, run_asgi(receiver.app()) as hook_base, \
            httpx.Client(timeout=30) as client:
        yield Hooks(world, api, f"{hook_base}/hook", receiver, key, client)


def _inbound(world: World, contact: str, pmid: str) -> int:
    now = utcnow()
    with committing(world.engine) as u:
        from switchboard.services.ingest import ingest_items

        ingest_items(u, channel_id=world.wa, now=now, items=[InboundMessage(
            pmid, ContactRef(contact, display_name="Dora"), now, "where is my parcel?")])
    return world.conversation(world.wa, contact)


def test_events_are_delivered_signed_once_each_with_a_stable_id(hooks: Hooks) -> None:
    r = hooks.call("POST", "/webhooks", json={"url": hooks.hook_url, "events": [
        "message.received", "conversation.assigned", "conversation.completed"]})
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and created["status"] == "active"
    assert "secret" not in hooks.call("GET", "/webhooks").json()[0]

    conv = _inbound(hooks.world, "4915100000077", "wamid.hook1")
    with committing(hooks.world.engine) as u:
        accept(u, hooks.world.a1, conv)
    with committing(hooks.world.engine) as u:
        complete(u, hooks.world.a1, conv)
    stats = hooks.deliver()
    assert (stats.dispatched, stats.delivered) == (3, 3)
    events = [verify(secret, h, b) for h, b in hooks.receiver.seen]
    assert [e["type"] for e in events] == ["message.received", "conversation.assigned", "conversation.completed"]
    assert events[0]["data"]["message"]["text"] == "where is my parcel?"
    assert events[0]["data"]["channel"] == "wa-main" and events[0]["data"]["conversation_id"] == conv
    assert events[1]["data"]["assigned_user_id"] == hooks.world.a1.user_id
    assert [h["switchboard-event-id"] for h, _ in hooks.receiver.seen] == [e["id"] for e in events]
    assert hooks.deliver().dispatched == 0 and len(hooks.receiver.seen) == 3  # nothing twice

    forged = dict(hooks.receiver.seen[0][0], **{"switchboard-signature": "t=1,v1=00"})
    with pytest.raises(AssertionError, match="bad signature"):
        verify(secret, forged, hooks.receiver.seen[0][1])
    with UnitOfWork(hooks.world.engine) as u:
        actions = list(u.session.execute(select(AuditLog.action).where(AuditLog.action.like("event_webhook.%")))
                       .scalars())
    assert actions == ["event_webhook.created"]


def test_a_failed_delivery_is_retried_logged_and_paused_after_a_day(hooks: Hooks) -> None:
    sub = hooks.call("POST", "/webhooks", json={"url": hooks.hook_url, "events": ["message.received"]}).json()
    hooks.receiver.status = 500
    _inbound(hooks.world, "4915100000088", "wamid.hook2")
    stats = hooks.deliver()
    assert (stats.dispatched, stats.retrying, stats.delivered) == (1, 1, 0)
    (delivery,) = hooks.call("GET", f"/webhooks/{sub['id']}/deliveries").json()
    assert delivery["status"] == "PENDING" and delivery["last_status_code"] == 500 and delivery["attempts"] == 1
    assert hooks.deliver().claimed == 0  # backing off
    with committing(hooks.world.engine) as u:
        u.session.execute(update(EventDelivery).values(next_attempt_at=utcnow()))
    hooks.receiver.status = 204
    assert hooks.deliver().delivered == 1
    ids = [h["switchboard-event-id"] for h, _ in hooks.receiver.seen]
    assert len(ids) == 2 and ids[0] == ids[1]  # at least once, the same id
    with UnitOfWork(hooks.world.engine) as u:
        attempts = u.session.execute(select(EventDeliveryAttempt.status_code, EventDeliveryAttempt.response_body)
                                     .order_by(EventDeliveryAttempt.id)).all()
    assert [tuple(a) for a in attempts] == [(500, "boom: try later"), (204, None)]
    listed = hooks.call("GET", "/webhooks").json()[0]
    assert listed["failing_since"] is None and listed["last_delivery_at"] and listed["pending"] == 0

    # an endpoint failing for a day: the delivery gives up after 24 h, the subscription pauses
    _inbound(hooks.world, "4915100000099", "wamid.hook3")
    hooks.receiver.status = 503
    hooks.deliver()
    with UnitOfWork(hooks.world.engine) as u:
        delivery_id = u.session.execute(select(EventDelivery.id).where(EventDelivery.status == "PENDING")).scalar_one()
    with committing(hooks.world.engine) as u:
        assert record_attempt(u, delivery_id, status_code=503, response_body="", error=None, duration_ms=5,
                              now=utcnow() + timedelta(hours=25)) == "FAILED"
    paused = hooks.call("GET", "/webhooks").json()[0]
    assert paused["status"] == "paused" and "HTTP 503" in paused["last_error"] and paused["failed"] == 1
    _inbound(hooks.world, "4915100000100", "wamid.hook4")
    stats = hooks.deliver()
    assert stats.dispatched == 0 and stats.claimed == 0  # a paused subscription gets nothing
    resumed = hooks.call("POST", f"/webhooks/{sub['id']}/resume").json()
    assert resumed["status"] == "active" and resumed["failing_since"] is None
    hooks.receiver.status = 200
    assert hooks.deliver().delivered == 1  # what happened while paused is delivered after resuming


def test_webhook_rules(hooks: Hooks) -> None:
    with committing(hooks.world.engine) as u:
        reader = create_api_key(u, Actor.system(hooks.world.org), name="r", scopes=["messages:read"]).key
        other = create_api_key(u, Actor.system(hooks.world.org2), name="o", scopes=["webhooks:manage"]).key
    assert hooks.call("GET", "/webhooks", reader).status_code == 403
    sub = hooks.call("POST", "/webhooks", json={"url": hooks.hook_url, "events": ["message.status"]}).json()
    for method, path in (("DELETE", f"/webhooks/{sub['id']}"), ("POST", f"/webhooks/{sub['id']}/resume"),
                         ("GET", f"/webhooks/{sub['id']}/deliveries")):
        assert hooks.call(method, path, other).status_code == 404
    assert hooks.call("GET", "/webhooks", other).json() == []
    bad = hooks.call("POST", "/webhooks", json={"url": "ftp://x.test/h", "events": ["message.status"]})
    assert bad.status_code == 422 and "http(s)" in bad.json()["detail"]
    bad = hooks.call("POST", "/webhooks", json={"url": hooks.hook_url, "events": ["message.deleted"]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "events.0"
    assert hooks.call("DELETE", f"/webhooks/{sub['id']}").status_code == 204
    with UnitOfWork(hooks.world.engine) as u:
        assert u.session.execute(select(EventSubscription.id)).first() is None
