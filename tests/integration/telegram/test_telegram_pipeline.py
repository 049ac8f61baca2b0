"""Telegram sync, listener and sending through the real domain services on real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from connectors.base import SEND
from connectors.telegram.fake import FakeTelegramGateway, FakeTelegramWorld
from connectors.telegram.gateway import TelegramGateway
from connectors.telegram.login import start_login, submit_code
from switchboard.db.schema import Channel, Conversation, ConversationEvent, Message
from switchboard.errors import InvalidInput
from switchboard.services.channels import create_channel, set_channel_credentials
from switchboard.services.organizations import create_organization
from switchboard.services.outbox import enqueue_bot_reply
from switchboard.settings import get_settings
from switchboard.types import Actor, OutboundRequest
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.sending import send_outbox_once
from switchboard.workflows.telegram import load_chat_cursors, run_listener, sync_telegram_channel

PHONE = "+15550001111"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> datetime:
        self.t += timedelta(seconds=1)
        return self.t


@pytest.fixture
def world() -> FakeTelegramWorld:
    w = FakeTelegramWorld(now=Clock())
    w.add_account(PHONE, login_code="24680")
    return w


def _key() -> bytes:
    return get_settings().secret_key_bytes()


def connected_channel(engine: Engine, world: FakeTelegramWorld) -> int:
    gw = FakeTelegramGateway(world)
    state = submit_code(gw, start_login(gw, PHONE), "24680")
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Acme")
        ch = create_channel(uow, Actor.system(org), key="tg", provider="telegram", name="Telegram", secret_key=_key())
        set_channel_credentials(uow, Actor.system(org), ch.id, _key(), {"api_id": 1, "api_hash": "x", "phone": PHONE,
                                                     "session": state.session})
        uow.commit()
    return ch.id


def factory(world: FakeTelegramWorld) -> Any:
    def make(creds: Mapping[str, Any]) -> TelegramGateway:
        return FakeTelegramGateway(world, str(creds["session"]))

    return make


def count(engine: Engine, stmt: Any) -> int:
    with engine.connect() as con:
        return int(con.execute(stmt).scalar_one())


def test_sync_stores_batches_with_cursors_and_is_incremental(engine: Engine, world: FakeTelegramWorld) -> None:
    channel_id = connected_channel(engine, world)
    ada = world.add_private_chat(PHONE, "Ada", username="ada")
    grp = world.add_group(PHONE, "Wholesale")
    for i in range(250):
        world.receive(PHONE, ada, f"ada {i}", notify=False)
    world.send_native(PHONE, ada, "answer from the phone")
    world.receive(PHONE, grp, "group hello", notify=False)

    report = sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())
    assert (report.chats_fetched, report.messages_fetched, report.messages_created) == (2, 252, 252)
    assert report.batches == 4 and report.conversations_created == 2
    assert count(engine, select(func.count()).select_from(Message)) == 252
    assert count(engine, select(func.count()).select_from(Message).where(Message.direction == "OUTBOUND")) == 1
    with UnitOfWork(engine) as uow:
        cursors = load_chat_cursors(uow, channel_id)
    assert cursors[f"chat:{ada.marked_id}"].last_message_id == 251
    assert cursors[f"chat:{ada.marked_id}"].peer.access_hash == ada.access_hash
    assert cursors[f"chat:{grp.marked_id}"].last_message_id == 252

    # second run: nothing changed, nothing fetched but the dialog list
    world.calls.clear()
    again = sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())
    assert (again.chats_fetched, again.chats_skipped, again.messages_fetched) == (0, 2, 0)
    assert [c[0] for c in world.calls] == ["iter_dialogs"]

    # a new message in one chat: one fetch from the stored cursor
    world.receive(PHONE, grp, "second", notify=False)
    third = sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())
    assert (third.chats_fetched, third.messages_created) == (1, 1)
    assert ("iter_history", (grp.marked_id, 252, 100)) in world.calls


def test_crash_mid_sync_resumes_from_the_last_stored_batch(engine: Engine, world: FakeTelegramWorld) -> None:
    channel_id = connected_channel(engine, world)
    ada = world.add_private_chat(PHONE, "Ada")
    for i in range(30):
        world.receive(PHONE, ada, f"m{i}", notify=False)
    world.inject_flood_wait("iter_history", 2)  # first page: a short wait, slept through

    class Boom(ConnectionError):
        pass

    world.inject_error("iter_history", Boom("network died"), skip=2)  # 2nd page (after the retried 1st)
    slept: list[float] = []
    with pytest.raises(Boom):
        sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key(), batch_size=10,
                              sleep=slept.append)
    assert slept == [2.0]
    assert count(engine, select(func.count()).select_from(Message)) == 10
    with UnitOfWork(engine) as uow:
        assert load_chat_cursors(uow, channel_id)[f"chat:{ada.marked_id}"].last_message_id == 10
    world.calls.clear()
    report = sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key(), batch_size=10)
    assert report.messages_created == 20 and report.messages_duplicate == 0
    assert world.calls[1] == ("iter_history", (ada.marked_id, 10, 10))
    assert count(engine, select(func.count()).select_from(Message)) == 30


def test_long_flood_wait_is_reported_on_the_channel(engine: Engine, world: FakeTelegramWorld) -> None:
    channel_id = connected_channel(engine, world)
    ada = world.add_private_chat(PHONE, "Ada")
    world.receive(PHONE, ada, "hi", notify=False)
    world.inject_flood_wait("iter_history", 900)
    report = sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())
    assert report.rate_limited_for == 900 and report.flood_waits == [900]
    with engine.connect() as con:
        err = con.execute(select(Channel.last_error).where(Channel.id == channel_id)).scalar_one()
    assert err is not None and "900" in err
    ok = sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())
    assert ok.messages_created == 1
    with engine.connect() as con:
        assert con.execute(select(Channel.last_error).where(Channel.id == channel_id)).scalar_one() is None


def test_sync_refuses_a_channel_that_is_not_connected(engine: Engine, world: FakeTelegramWorld) -> None:
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Acme")
        ch = create_channel(uow, Actor.system(org), key="tg", provider="telegram", name="Telegram", secret_key=_key())
        wa = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", secret_key=_key())
        uow.commit()
    with pytest.raises(InvalidInput, match="not connected yet"):
        sync_telegram_channel(engine, ch.id, factory(world), secret_key=_key())
    with pytest.raises(InvalidInput, match="not Telegram"):
        sync_telegram_channel(engine, wa.id, factory(world), secret_key=_key())


def test_listener_ingests_new_edited_deleted_and_read(engine: Engine, world: FakeTelegramWorld) -> None:
    channel_id = connected_channel(engine, world)
    ada = world.add_private_chat(PHONE, "Ada")
    chan = world.add_channel(PHONE, "Shop news")
    session = next(k for k, v in world.sessions.items() if v == PHONE)
    gw = FakeTelegramGateway(world, f"fake:{session}")

    first = world.receive(PHONE, ada, "hello")
    world.receive(PHONE, chan, "channel post")
    sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())  # stores the peers
    connectors = ConnectorCache(engine, _key(), telegram_gateway=factory(world))
    try:
        sent = connectors.port(channel_id, SEND)[1].send(OutboundRequest(recipient_id=str(ada.marked_id),
                                                                         body="hi Ada"))
    finally:
        connectors.close()
    assert sent.provider_message_id == f"{ada.marked_id}:2"  # ids per account; the channel counts its own
    sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())  # stores the echo (SENT)
    world.calls.clear()

    world.edit(PHONE, ada, first.id, "hello (edited)")
    second = world.receive(PHONE, ada, "are you there?")
    world.delete(PHONE, ada, [second.id])
    world.delete(PHONE, chan, [1])
    world.read_outbox(PHONE, ada, 2)

    stop = threading.Event()
    seen: list[str] = []
    orig = gw.listen

    def handler_stopping_after(n: int) -> Any:
        def listen(handler: Any, stop_: threading.Event) -> None:
            def wrapped(ev: Any) -> None:
                handler(ev)
                seen.append(type(ev).__name__)
                if len(seen) == n:
                    stop_.set()
            orig(wrapped, stop_)
        return listen

    gw.listen = handler_stopping_after(7)  # type: ignore[method-assign]
    stats = run_listener(engine, channel_id, gw, stop=stop, max_seconds=10)
    assert stats.failed == 0 and stats.events == 7
    # (the fake also queued the events of the earlier receive() calls: replays are idempotent)
    with engine.connect() as con:
        rows = {r.provider_message_id: r for r in con.execute(select(
            Message.provider_message_id, Message.body, Message.is_edited, Message.is_deleted, Message.status))}
        read_events = con.execute(select(func.count()).select_from(ConversationEvent)
                                  .where(ConversationEvent.type == "MESSAGE_READ")).scalar_one()
    assert rows[f"{ada.marked_id}:1"].body == "hello (edited)" and rows[f"{ada.marked_id}:1"].is_edited
    assert rows[f"{ada.marked_id}:3"].is_deleted  # private-chat deletion resolved from the stored key
    assert rows[f"{chan.marked_id}:1"].is_deleted
    assert rows[f"{ada.marked_id}:2"].status == "READ" and read_events == 1
    assert len(rows) == 4


def test_outbox_sends_telegram_with_the_stored_peer_and_maps_flood_wait(engine: Engine,
                                                                        world: FakeTelegramWorld) -> None:
    """The production path: the outbox flow's send_outbox_once → connector cache → TelegramConnector
    with the peer (access hash) the sync stored: no lookup on Telegram's side."""
    channel_id = connected_channel(engine, world)
    ada = world.add_private_chat(PHONE, "Ada")
    world.receive(PHONE, ada, "hello", notify=False)
    sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())
    with UnitOfWork(engine) as uow:
        conv_id, org = uow.session.execute(select(Conversation.id, Conversation.organization_id)).one()
        first = enqueue_bot_reply(uow, Actor.system(org), conv_id, "yo", idempotency_key="tg-1")
        uow.commit()
    connectors = ConnectorCache(engine, _key(), telegram_gateway=factory(world))
    world.calls.clear()
    try:
        assert send_outbox_once(engine, connectors).sent == 1
        assert [c[0] for c in world.calls] == ["send_text"]  # no resolve_peer: the sync stored the peer
        world.inject_flood_wait("send_text", 77)
        with UnitOfWork(engine) as uow:
            second = enqueue_bot_reply(uow, Actor.system(org), conv_id, "again", idempotency_key="tg-2")
            uow.commit()
        before = datetime.now(UTC)
        stats = send_outbox_once(engine, connectors)
        assert stats.retrying == 1 and "FLOOD_WAIT" in stats.errors[0]
    finally:
        connectors.close()
    with UnitOfWork(engine) as uow:
        sent, waiting = uow.session.get(Message, first.id), uow.session.get(Message, second.id)
        assert sent is not None and waiting is not None
        assert sent.status == "SENT" and sent.provider_message_id == f"{ada.marked_id}:2"
        assert waiting.status == "PENDING" and waiting.error_code == "FLOOD_WAIT"
        assert waiting.next_attempt_at is not None and waiting.next_attempt_at >= before + timedelta(seconds=76)
    # the echo of the sent message found by the next sync is the same row (same key)
    sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())
    assert count(engine, select(func.count()).select_from(Message)) == 3  # hello, yo, the pending one
    assert count(engine, select(func.count()).select_from(Conversation)) == 1


def test_a_revoked_session_puts_the_channel_in_error_instead_of_failing_every_send(
        engine: Engine, world: FakeTelegramWorld) -> None:
    """The user ended the session on their phone: the next send (or sync) puts the channel in `error`
    with the reason, later messages wait instead of failing one by one; a new login clears it."""
    from connectors.base import AuthenticationError
    from switchboard.services.channel_lifecycle import credential_warnings

    channel_id = connected_channel(engine, world)
    ada = world.add_private_chat(PHONE, "Ada")
    world.receive(PHONE, ada, "hello", notify=False)
    sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())
    with UnitOfWork(engine) as uow:
        conv_id, org = uow.session.execute(select(Conversation.id, Conversation.organization_id)).one()
        for i in range(3):
            enqueue_bot_reply(uow, Actor.system(org), conv_id, f"reply {i}", idempotency_key=f"rv-{i}")
        uow.commit()
    world.revoke_sessions(PHONE)
    connectors = ConnectorCache(engine, _key(), telegram_gateway=factory(world))
    try:
        stats = send_outbox_once(engine, connectors, limit=1)
        assert stats.failed == 1 and "AUTH_KEY_UNREGISTERED" in stats.errors[0]
        assert send_outbox_once(engine, connectors).claimed == 0  # the two others wait
    finally:
        connectors.close()
    with pytest.raises(AuthenticationError):
        sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key())
    with UnitOfWork(engine) as uow:
        row = uow.session.get(Channel, channel_id)
        assert row is not None and row.status == "error" and "connect the account again" in (row.last_error or "")
        assert [w.channel_key for w in credential_warnings(uow, Actor.system(org))] == ["tg"]
        pending = uow.session.execute(select(func.count()).select_from(Message)
                                      .where(Message.status == "PENDING")).scalar_one()
    assert pending == 2
    # logged in again (the Telegram login page saves the new session): active, the replies go out
    gw = FakeTelegramGateway(world)
    state = submit_code(gw, start_login(gw, PHONE), "24680")
    with UnitOfWork(engine) as uow:
        set_channel_credentials(uow, Actor.system(org), channel_id, _key(),
                                {"api_id": 1, "api_hash": "x", "phone": PHONE, "session": state.session})
        uow.commit()
    connectors = ConnectorCache(engine, _key(), telegram_gateway=factory(world))
    try:
        assert send_outbox_once(engine, connectors).sent == 2
    finally:
        connectors.close()
