"""The Telegram listener after its connection drops: it connects again and goes on ingesting, and a
message that arrived while it was disconnected is not lost.

A connection "drops" the two ways the Telethon gateway reports it: ``listen`` returns although
nobody asked it to stop (the client is no longer connected), or it raises RetryableError (a network
error). The gateway is the fake one with a test-side subclass that drops on cue; events stay queued
in the fake world while nobody listens, as Telegram's update state does for Telethon's catch_up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select

from connectors.base import RetryableError
from connectors.telegram.fake import FakeTelegramGateway, FakeTelegramWorld
from connectors.telegram.gateway import EventHandler, TgEvent
from switchboard.db.schema import Message
from switchboard.workflows.telegram import ListenerStats, run_listener
from tests.integration.telegram.test_telegram_pipeline import PHONE, Clock, connected_channel

Drop = Callable[[], None]


def _return() -> None:
    """The connection ended: ``listen`` returns without ``stop`` being set."""


def _raise() -> None:
    raise RetryableError("cannot reach Telegram: ConnectionResetError: [Errno 104] Connection reset by peer",
                         code="NETWORK")


class DroppingGateway(FakeTelegramGateway):
    """Drops the connection after the first ``drop_after`` events of the first connection; later
    connections stay up. Counts connections and says when the drop happened."""

    def __init__(self, world: FakeTelegramWorld, session: str, *, drop_after: int, drop: Drop) -> None:
        super().__init__(world, session)
        self.drop_after = drop_after
        self.drop = drop
        self.connections = 0
        self.dropped = threading.Event()

    def listen(self, handler: EventHandler, stop: threading.Event) -> None:
        self.connections += 1
        if self.connections > 1:
            return super().listen(handler, stop)
        delivered = 0
        cut = threading.Event()

        def counting(event: TgEvent) -> None:
            nonlocal delivered
            handler(event)
            delivered += 1
            if delivered == self.drop_after:
                cut.set()

        def relay_stop() -> None:
            stop.wait()
            cut.set()

        threading.Thread(target=relay_stop, daemon=True).start()  # during the first connection too
        super().listen(counting, cut)  # the fake stops listening at the cut: the connection is gone
        if not stop.is_set():
            self.dropped.set()
            self.drop()


def _bodies(engine: Engine) -> list[str | None]:
    with engine.connect() as con:
        return list(con.execute(select(Message.body).order_by(Message.id)).scalars())


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("drop", [_return, _raise], ids=["listen-returns", "listen-raises-retryable"])
def test_the_listener_reconnects_after_the_connection_drops(engine: Engine, drop: Drop) -> None:
    world = FakeTelegramWorld(now=Clock())
    world.add_account(PHONE, login_code="24680")
    channel_id = connected_channel(engine, world)
    ada = world.add_private_chat(PHONE, "Ada", username="ada")
    session = next(k for k, v in world.sessions.items() if v == PHONE)
    gateway = DroppingGateway(world, f"fake:{session}", drop_after=1, drop=drop)
    world.receive(PHONE, ada, "before the drop")

    stop = threading.Event()
    outcome: dict[str, ListenerStats | BaseException] = {}

    def listener() -> None:
        try:
            outcome["stats"] = run_listener(engine, channel_id, gateway, stop=stop, max_seconds=120,
                                            retry_delay=0.05)
        except BaseException as exc:  # reported by the assertions below, not lost in the thread
            outcome["error"] = exc

    thread = threading.Thread(target=listener, name="listener", daemon=True)
    thread.start()
    try:
        assert gateway.dropped.wait(60), "the first connection never dropped"
        world.receive(PHONE, ada, "while disconnected")
        _wait_until(lambda: gateway.connections >= 2 or not thread.is_alive(), "the listener reconnects")
        assert "error" not in outcome, f"the listener died with the connection: {outcome.get('error')!r}"
        assert thread.is_alive(), "the listener returned when the connection dropped, with stop not set"
        world.receive(PHONE, ada, "after the reconnect")
        _wait_until(lambda: len(_bodies(engine)) >= 3, "every message is stored")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert _bodies(engine) == ["before the drop", "while disconnected", "after the reconnect"]
    assert gateway.connections == 2
    stats = outcome["stats"]
    assert isinstance(stats, ListenerStats)
    assert (stats.events, stats.messages_created, stats.failed) == (3, 3, 0)


def test_a_listener_asked_to_stop_does_not_reconnect(engine: Engine) -> None:
    """The other side of reconnecting: ``stop`` ends the listener, whatever the connection does."""
    world = FakeTelegramWorld(now=Clock())
    world.add_account(PHONE, login_code="24680")
    channel_id = connected_channel(engine, world)
    ada = world.add_private_chat(PHONE, "Ada", username="ada")
    session = next(k for k, v in world.sessions.items() if v == PHONE)
    gateway = DroppingGateway(world, f"fake:{session}", drop_after=10**6, drop=_return)
    world.receive(PHONE, ada, "hello")
    stop = threading.Event()

    def stop_once_stored() -> None:
        _wait_until(lambda: _bodies(engine) == ["hello"], "the message is stored")
        stop.set()

    stopper = threading.Thread(target=stop_once_stored, daemon=True)
    stopper.start()
    try:
        stats = run_listener(engine, channel_id, gateway, stop=stop, max_seconds=120)
    finally:
        stop.set()
        stopper.join(60)
    assert gateway.connections == 1 and not gateway.dropped.is_set()
    assert (stats.events, stats.messages_created, stats.failed) == (1, 1, 0)
    assert _bodies(engine) == ["hello"]
