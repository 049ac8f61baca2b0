"""WhatsApp templates: synced from the Graph API through the connector (upsert, vanished ones marked),
listed for a conversation (approved only, view on the channel), queued with checked parameters and
sent as a Cloud API template message outside the 24-hour window."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from switchboard.db.schema import Message, MessageTemplate
from switchboard.errors import InvalidInput, NotFound, PermissionDenied
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.conversations import accept
from switchboard.services.templates import enqueue_template, list_templates, sync_templates
from switchboard.types import Actor
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.sending import send_outbox_once
from switchboard.workflows.templates import sync_all_templates
from tests.fakes.graph import FakeGraph
from tests.fakes.server import run_asgi

from .conftest import KEY, World, at

ORDER: dict[str, Any] = {
    "name": "order_update", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": "1",
    "components": [{"type": "BODY", "text": "Hi {{1}}, order {{2}} ships today.",
                    "example": {"body_text": [["Ana", "#1"]]}},
                   {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://t.test/{{1}}",
                                                    "example": ["https://t.test/1"]}]}]}
HELLO = {"name": "hello", "language": "de", "status": "APPROVED", "category": "MARKETING",
         "components": [{"type": "BODY", "text": "Hallo!"}]}
PENDING = {"name": "promo", "language": "en_US", "status": "PENDING", "category": "MARKETING",
           "components": [{"type": "BODY", "text": "Sale {{1}}"}]}


@dataclass
class Rig:
    world: World
    graph: FakeGraph
    connectors: ConnectorCache
    channel: int


@pytest.fixture
def rig(world: World) -> Iterator[Rig]:
    graph = FakeGraph(token="tok", account_id="waba-1")
    graph.templates = [ORDER, HELLO, PENDING]
    with run_asgi(graph.app) as base:
        graph.base_url = base
        system = Actor.system(world.org)
        with world.uow() as u:
            channel = create_channel(u, system, key="wa-live", provider="whatsapp", name="WhatsApp live",
                                     secret_key=KEY, external_id="1555",
                                     credentials={"access_token": "tok", "app_secret": "s", "waba_id": "waba-1",
                                                  "api_base_url": base}).id
            grant_channel_permission(u, system, user_id=world.a1.user_id, channel_id=channel, can_view=True,
                                     can_send=True)
            grant_channel_permission(u, system, user_id=world.viewer.user_id, channel_id=channel, can_view=True,
                                     can_send=False)
        connectors = ConnectorCache(world.engine, KEY)
        try:
            yield Rig(world, graph, connectors, channel)
        finally:
            connectors.close()


def _stored(rig: Rig) -> dict[tuple[str, str], tuple[str, bool]]:
    with rig.world.uow() as u:
        return {(t.name, t.language): (t.status, t.removed_at is not None)
                for t in u.session.execute(select(MessageTemplate)).scalars()}


def test_sync_upserts_the_catalogue_and_marks_vanished_templates(rig: Rig) -> None:
    stats = sync_all_templates(rig.world.engine, rig.connectors, now=at(0))
    # the world's two other WhatsApp channels have no credentials: counted as failed, the live one synced
    assert (stats.channels, stats.changes["inserted"], stats.changes["updated"], stats.changes["removed"],
            stats.failed) == (3, 3, 0, 0, 2)
    assert not any(e.startswith("wa-live") for e in stats.errors)
    assert _stored(rig) == {("order_update", "en_US"): ("APPROVED", False), ("hello", "de"): ("APPROVED", False),
                            ("promo", "en_US"): ("PENDING", False)}
    rig.graph.templates = [ORDER, {**PENDING, "status": "REJECTED"}]  # hello deleted, promo rejected
    stats = sync_all_templates(rig.world.engine, rig.connectors, now=at(5))
    assert (stats.changes["inserted"], stats.changes["updated"], stats.changes["removed"]) == (0, 2, 1)
    assert _stored(rig)[("hello", "de")] == ("APPROVED", True)
    assert _stored(rig)[("promo", "en_US")] == ("REJECTED", False)
    rig.graph.templates = [ORDER, HELLO]  # it comes back
    assert sync_all_templates(rig.world.engine, rig.connectors, now=at(6)).changes["inserted"] == 0
    assert _stored(rig)[("hello", "de")] == ("APPROVED", False)
    with rig.world.uow() as u, pytest.raises(PermissionDenied):  # syncing is for admins and flows
        sync_templates(u, rig.world.manager, rig.channel, [HELLO])
    with rig.world.uow() as u, pytest.raises(NotFound):
        sync_templates(u, Actor.system(rig.world.org2), rig.channel, [HELLO])


def test_a_channel_whose_sync_fails_is_counted_and_the_others_go_on(rig: Rig) -> None:
    from tests.fakes.graph import Forced

    rig.graph.forced.append(Forced(401, {"error": {"message": "expired", "type": "OAuthException", "code": 190}}))
    stats = sync_all_templates(rig.world.engine, rig.connectors, now=at(0))
    assert stats.failed == 3 and any(e.startswith("wa-live") and "expired" in e for e in stats.errors)
    assert _stored(rig) == {}


def test_approved_template_is_sent_outside_the_window_with_checked_parameters(rig: Rig) -> None:
    w = rig.world
    sync_all_templates(w.engine, rig.connectors, now=at(0))
    w.ingest(rig.channel, "4915550002", "in-1", 0, name="Ana")
    conv = w.conversation(rig.channel, "4915550002")
    with w.uow() as u:
        accept(u, w.a1, conv, now=at(1))
    with w.uow() as u:
        listed = list_templates(u, w.viewer, conv)  # viewing is enough to see them
    assert [t.label for t in listed] == ["hello (de)", "order_update (en_US)"]
    order = next(t for t in listed if t.name == "order_update")
    assert [(s.key, s.count) for s in order.slots] == [("body", 2), ("button:0", 1)]
    late = at(3 * 24 * 60)
    for params, why in (({"body": ["Ana"], "button:0": ["1"]}, "body takes 2 parameters, 1 given"),
                        ({"body": ["Ana", "#1"]}, "button 0 takes 1 parameter, 0 given")):
        with w.uow() as u, pytest.raises(InvalidInput, match=why):
            enqueue_template(u, w.a1, conv, order.id, params, idempotency_key="t-bad", now=late)
    with w.uow() as u:
        pending_id = u.session.execute(select(MessageTemplate.id).where(MessageTemplate.name == "promo")).scalar_one()
    with w.uow() as u, pytest.raises(InvalidInput, match="is PENDING; only approved"):
        enqueue_template(u, w.a1, conv, pending_id, {"body": ["x"]}, idempotency_key="t-bad", now=late)
    with w.uow() as u, pytest.raises(PermissionDenied):  # view only: may not send
        enqueue_template(u, w.viewer, conv, order.id, {"body": ["Ana", "#1"], "button:0": ["1"]},
                         idempotency_key="t-viewer", now=late)
    with w.uow() as u:
        assert u.session.execute(select(Message.id).where(Message.direction == "OUTBOUND")).first() is None
    with w.uow() as u:
        msg = enqueue_template(u, w.a1, conv, order.id, {"body": ["Ana", "#1"], "button:0": ["1"]},
                               idempotency_key="t-1", now=late)
    assert msg.body == "Hi Ana, order #1 ships today." and msg.status == "PENDING"
    assert send_outbox_once(w.engine, rig.connectors, now=late).sent == 1
    sent = rig.graph.requests[-1]["json"]
    assert sent["type"] == "template" and sent["to"] == "4915550002"
    assert sent["template"] == {"name": "order_update", "language": {"code": "en_US"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#1"}]},
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "1"}]}]}
    with w.uow() as u:
        m = u.session.execute(select(Message).where(Message.id == msg.id)).scalar_one()
        assert (m.status, m.content_type) == ("SENT", "template")
