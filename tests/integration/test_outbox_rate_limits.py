"""Per-channel rate limits (issues 11 and 17): the limit is shared by every worker process (held in
PostgreSQL), sends are spaced with no burst, fractional rates pace correctly, a limit of 0 is refused by
the database, and a slow channel never delays another channel's messages (nothing sleeps for it)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from switchboard.db.schema import Channel, Message
from switchboard.services.channels import create_channel
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.services.outbox import enqueue_bot_reply
from switchboard.services.send_rate import PACING, lateness_tolerance, send_interval, take_send_slot
from switchboard.settings import get_settings
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.sending import send_outbox_once
from tests.fakes.graph import FakeGraph
from tests.fakes.server import run_asgi
from tests.integration.send_rig import finish, running


def test_send_slots_are_spaced_by_the_rate_and_never_burst(engine: Engine) -> None:
    """GCRA without burst: one slot per interval whatever the callers; a refusal says when."""
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Slots")
        ch = create_channel(uow, Actor.system(org), key="s", provider="messenger", name="s",
                            secret_key=get_settings().secret_key_bytes(), external_id="page-s",
                            rate_limit_per_second=0.5)
        uow.commit()
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    step = send_interval(0.5)
    assert 2.0 < step <= 2.0 / PACING + 1e-9  # a little wider than the limit: headroom for jitter

    def take(at: float, rate: float = 0.5) -> float:
        with UnitOfWork(engine) as uow:
            delay = take_send_slot(uow, ch.id, rate, t0 + timedelta(seconds=at))
            uow.commit()
        return delay

    assert take(0.0) == 0.0  # the first send goes at once
    assert take(0.0) == pytest.approx(step)  # the next is due one interval later, nothing taken
    assert take(1.0) == pytest.approx(step - 1.0)
    assert take(step) == 0.0
    assert take(100.0) == 0.0 and take(100.0) > 0  # an idle channel gathers no burst
    assert take(100.0 + step - lateness_tolerance(0.5)) == 0.0  # asked late: the next slot does not move
    burst = [take(200.0 + i / 1000, rate=80) for i in range(1000)]  # 1,000 tries within 1 s at 80/s
    granted = sum(d == 0.0 for d in burst)
    assert 0.99 / send_interval(80) <= granted < 1 + (1 + lateness_tolerance(80)) / send_interval(80) < 80
    for bad in (0, -1):
        with pytest.raises(ValueError, match="more than 0"):
            take(300.0, rate=bad)


@dataclass
class Rig:
    engine: Engine
    graph: FakeGraph
    connectors: ConnectorCache
    channels: dict[str, int]
    conversations: dict[str, int]
    org: int


@pytest.fixture
def rig(engine: Engine) -> Iterator[Rig]:
    """Two Messenger pages on one fake Graph API: "slow" limited to 0.2/s, "fast" to 80/s."""
    key = get_settings().secret_key_bytes()
    graph = FakeGraph(token="tok", account_id="p")
    with run_asgi(graph.app) as base:
        channels: dict[str, int] = {}
        conversations: dict[str, int] = {}
        with UnitOfWork(engine) as uow:
            org = create_organization(uow, "Limits")
            for name, rate in (("slow", 0.2), ("fast", 80.0)):
                ch = create_channel(uow, Actor.system(org), key=name, provider="messenger", name=name, secret_key=key,
                                    external_id=f"page-{name}", rate_limit_per_second=rate,
                                    credentials={"page_access_token": "tok", "app_secret": "s",
                                                 "page_id": f"page-{name}", "api_base_url": base})
                channels[name] = ch.id
            uow.commit()
        for name, channel_id in channels.items():
            with UnitOfWork(engine) as uow:
                result = ingest_items(uow, channel_id=channel_id, items=[InboundMessage(
                    provider_message_id=f"m-{name}", contact=ContactRef(f"cust-{name}"),
                    sent_at=datetime.now(UTC) - timedelta(minutes=1), body="hello")])
                uow.commit()
                conversations[name] = result.conversation_ids[0]
        connectors = ConnectorCache(engine, key)
        try:
            yield Rig(engine, graph, connectors, channels, conversations, org)
        finally:
            connectors.close()


def enqueue(rig: Rig, name: str, n: int, batch: str = "a") -> list[int]:
    ids = []
    with UnitOfWork(rig.engine) as uow:
        for i in range(n):
            ids.append(enqueue_bot_reply(uow, Actor.system(rig.org), rig.conversations[name], f"{name} {i}",
                                         idempotency_key=f"{name}-{batch}{i}").id)
        uow.commit()
    return ids


def statuses(rig: Rig, ids: list[int]) -> list[tuple[str, int]]:
    with UnitOfWork(rig.engine) as uow:
        rows = uow.session.execute(select(Message.id, Message.status, Message.attempts)
                                   .where(Message.id.in_(ids)).order_by(Message.id)).all()
    return [(r.status, r.attempts) for r in rows]


def test_a_slow_channel_does_not_delay_another_channels_messages(rig: Rig) -> None:
    slow = enqueue(rig, "slow", 3)  # queued first: the old outbox slept 5 s per message here
    fast = enqueue(rig, "fast", 3)
    t0 = datetime.now(UTC) + timedelta(minutes=1)  # later than every enqueue below
    stats = send_outbox_once(rig.engine, rig.connectors, now=t0)
    # the fast channel's three go at once? no burst: one per its interval; the others are deferred too
    assert (stats.claimed, stats.sent, stats.deferred, stats.retrying, stats.failed) == (6, 2, 4, 0, 0)
    # the deferred are given back, unsent and with no attempt counted, for when their slots are due
    assert statuses(rig, slow) == [("SENT", 1), ("PENDING", 0), ("PENDING", 0)]
    step = send_interval(0.2)
    with UnitOfWork(rig.engine) as uow:
        due = list(uow.session.execute(select(Message.next_attempt_at).where(Message.id.in_(slow[1:]))
                                       .order_by(Message.id)).scalars())
    assert [(d - t0).total_seconds() for d in due if d is not None] == [pytest.approx(step), pytest.approx(2 * step)]
    assert len(rig.graph.requests) == 2

    more = enqueue(rig, "fast", 1, batch="b")  # a new message of the fast channel while the slow one waits
    fast_step = send_interval(80)
    sent = sum(send_outbox_once(rig.engine, rig.connectors, now=t0 + timedelta(seconds=1 + i * fast_step)).sent
               for i in range(3))  # one slot per 1/80 s: a worker that is that quick sends one per round
    assert sent == 3 and statuses(rig, fast + more) == [("SENT", 1)] * 4
    slot = timedelta(seconds=step)  # the limiter's own arithmetic: k slots later is k × the rounded interval
    for at in (slot, 2 * slot):
        stats = send_outbox_once(rig.engine, rig.connectors, now=t0 + at)
        assert (stats.claimed, stats.sent) == (1, 1)
    assert statuses(rig, slow) == [("SENT", 1)] * 3


def test_half_a_message_per_second_sends_one_every_two_seconds(rig: Rig) -> None:
    with UnitOfWork(rig.engine) as uow:
        uow.session.execute(update(Channel).where(Channel.id == rig.channels["slow"])
                            .values(rate_limit_per_second=0.5))
        uow.commit()
    ids = enqueue(rig, "slow", 3)
    t0 = datetime.now(UTC) + timedelta(minutes=1)  # later than every enqueue below
    sent_at: list[float] = []
    for step in range(12):  # a worker polling every 0.5 s for 5.5 s
        now = t0 + timedelta(seconds=step / 2)
        sent_at += [step / 2] * send_outbox_once(rig.engine, rig.connectors, now=now).sent
    assert sent_at == [0.0, 2.5, 5.0]  # one per 2.04 s (2 % headroom), seen by a worker polling every 0.5 s
    assert statuses(rig, ids) == [("SENT", 1)] * 3


def test_the_database_refuses_a_rate_limit_of_zero_or_less(rig: Rig) -> None:
    for bad in (0, -1):
        with UnitOfWork(rig.engine) as uow, pytest.raises(IntegrityError, match="rate_limit_positive"):
            uow.session.execute(update(Channel).where(Channel.id == rig.channels["slow"])
                                .values(rate_limit_per_second=bad))
            uow.session.flush()
    with UnitOfWork(rig.engine) as uow:
        assert uow.session.get(Channel, rig.channels["slow"]).rate_limit_per_second == 0.2  # type: ignore[union-attr]


def test_three_worker_processes_share_one_channels_limit(db_url: str) -> None:
    """Three sender processes, one channel limited to 40/s: together never more than 40 in any one second
    at the platform (the sandbox's own receive times), each message once."""
    with running(db_url, rate=40.0, statuses=False) as rig:
        keys = rig.enqueue(120)
        finish(*(rig.worker(lease=10, idle=1.5) for _ in range(3)))
        seen = rig.keys()
    assert sorted(seen["counts"]) == sorted(keys) and set(seen["counts"].values()) == {1}
    assert seen["max_in_one_second"] <= 40
    assert seen["last_at"] - seen["first_at"] >= 119 / 40  # paced, not burst (figures: bench/bench_send.py)
