"""The messaging window in the outbox: refused at enqueue, checked again right before the platform is
called (a reply that waited past the window is failed with the reason; the platform never sees it),
and Messenger replies of a person between 24 h and 7 days go with the HUMAN_AGENT tag."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from switchboard.db.schema import Message
from switchboard.domain.messaging_window import WindowState
from switchboard.errors import InvalidInput
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.conversations import accept
from switchboard.services.outbox import conversation_window, enqueue_bot_reply, enqueue_reply
from switchboard.types import Actor
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.sending import send_outbox_once
from tests.fakes.graph import FakeGraph
from tests.fakes.server import run_asgi

from .conftest import KEY, World, at

HOUR = 60.0
DAY = 24 * HOUR


@dataclass
class Rig:
    world: World
    graph: FakeGraph
    connectors: ConnectorCache
    messenger: int
    whatsapp: int


@pytest.fixture
def rig(world: World) -> Iterator[Rig]:
    graph = FakeGraph(token="tok", account_id="page-1")
    with run_asgi(graph.app) as base:
        system = Actor.system(world.org)
        with world.uow() as u:
            fb = create_channel(u, system, key="fb", provider="messenger", name="Messenger", secret_key=KEY,
                                external_id="page-1", credentials={"page_access_token": "tok", "app_secret": "s",
                                                                   "api_base_url": base}).id
            wa = create_channel(u, system, key="wa-live", provider="whatsapp", name="WhatsApp live",
                                secret_key=KEY, external_id="1555",
                                credentials={"access_token": "tok", "app_secret": "s", "api_base_url": base}).id
            for channel in (fb, wa):
                grant_channel_permission(u, system, user_id=world.a1.user_id, channel_id=channel, can_view=True,
                                         can_send=True)
        connectors = ConnectorCache(world.engine, KEY)
        try:
            yield Rig(world, graph, connectors, fb, wa)
        finally:
            connectors.close()


def _conversation(rig: Rig, channel: int, contact: str) -> int:
    rig.world.ingest(channel, contact, f"{contact}-in", 0)
    conv = rig.world.conversation(channel, contact)
    with rig.world.uow() as u:
        accept(u, rig.world.a1, conv, now=at(1))
    return conv


def _message(rig: Rig, message_id: int) -> Message:
    with rig.world.uow() as u:
        m = u.session.execute(select(Message).where(Message.id == message_id)).scalar_one()
        u.session.expunge(m)
        return m


def test_whatsapp_refuses_free_text_after_24_hours_at_enqueue_and_at_send(rig: Rig) -> None:
    w = rig.world
    conv = _conversation(rig, rig.whatsapp, "4915550001")
    with w.uow() as u:
        window = conversation_window(u, w.a1, conv, now=at(20 * HOUR))
    assert window.state is WindowState.OPEN and "4 h left" in window.reason
    with w.uow() as u:  # queued inside the window...
        queued = enqueue_reply(u, w.a1, conv, "sorry for the wait", idempotency_key="late-1", now=at(23 * HOUR))
    stats = send_outbox_once(w.engine, rig.connectors, now=at(25 * HOUR))  # ...sent after it closed
    assert (stats.failed, stats.sent) == (1, 0)
    assert rig.graph.requests == []  # the platform was never called
    failed = _message(rig, queued.id)
    assert failed.status == "FAILED" and failed.error_code == "outside_window" and failed.is_dead_letter
    assert "WhatsApp allows free text only within 24 hours" in (failed.error_message or "")
    with w.uow() as u, pytest.raises(InvalidInput, match="Send an approved template instead"):
        enqueue_reply(u, w.a1, conv, "hello again", idempotency_key="late-2", now=at(25 * HOUR))
    with w.uow() as u:
        assert conversation_window(u, w.a1, conv, now=at(25 * HOUR)).state is WindowState.TEMPLATE_REQUIRED


def test_messenger_human_agent_tag_between_24_hours_and_7_days_then_refused(rig: Rig) -> None:
    w = rig.world
    conv = _conversation(rig, rig.messenger, "psid-1")
    with w.uow() as u:
        inside = enqueue_reply(u, w.a1, conv, "right away", idempotency_key="fb-1", now=at(2 * HOUR))
    assert send_outbox_once(w.engine, rig.connectors, now=at(3 * HOUR)).sent == 1
    assert rig.graph.requests[-1]["json"]["messaging_type"] == "RESPONSE"
    assert "tag" not in rig.graph.requests[-1]["json"]
    with w.uow() as u:
        tagged = enqueue_reply(u, w.a1, conv, "following up", idempotency_key="fb-2", now=at(2 * DAY))
        assert conversation_window(u, w.a1, conv, now=at(2 * DAY)).tag == "HUMAN_AGENT"
    assert send_outbox_once(w.engine, rig.connectors, now=at(2 * DAY + 1)).sent == 1
    sent = rig.graph.requests[-1]["json"]
    assert sent["messaging_type"] == "MESSAGE_TAG" and sent["tag"] == "HUMAN_AGENT"
    assert sent["message"]["text"] == "following up"
    with w.uow() as u, pytest.raises(InvalidInput, match="written by a person"):  # a bot may not use the tag
        enqueue_bot_reply(u, Actor.system(w.org), conv, "automated", idempotency_key="bot-1", now=at(2 * DAY))
    with w.uow() as u:
        late = enqueue_reply(u, w.a1, conv, "still there?", idempotency_key="fb-3", now=at(6 * DAY + 23 * HOUR))
    calls = len(rig.graph.requests)
    stats = send_outbox_once(w.engine, rig.connectors, now=at(7 * DAY + 1))
    assert (stats.failed, stats.sent, len(rig.graph.requests)) == (1, 0, calls)
    assert "within 7 days" in (_message(rig, late.id).error_message or "")
    with w.uow() as u, pytest.raises(InvalidInput, match="Wait for the customer to write again"):
        enqueue_reply(u, w.a1, conv, "hello?", idempotency_key="fb-4", now=at(8 * DAY))
    assert {_message(rig, m.id).status for m in (inside, tagged)} == {"SENT"}


def test_telegram_has_no_window(world: World) -> None:
    world.ingest(world.tg, "tg-user", "tg-in", 0)
    conv = world.conversation(world.tg, "tg-user")
    with world.uow() as u:
        accept(u, world.a2, conv, now=at(1))
        msg = enqueue_reply(u, world.a2, conv, "a month later", idempotency_key="tg-1", now=at(30 * DAY))
        assert conversation_window(u, world.a2, conv, now=at(30 * DAY)).state is WindowState.NO_WINDOW
    assert msg.status == "PENDING"
