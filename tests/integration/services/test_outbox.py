"""Outbox: idempotent enqueue, leases under concurrency, backoff, dead letters, first response."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from switchboard.db.schema import Message
from switchboard.errors import Conflict, InvalidInput
from switchboard.services.conversations import accept
from switchboard.services.inbox_views import get_conversation
from switchboard.services.outbox import (
    claim_due,
    enqueue_bot_reply,
    enqueue_reply,
    list_dead_letters,
    record_failure,
    record_sent,
    retry_dead_letter,
)
from switchboard.types import Actor

from .conftest import World, at


def _accepted(world: World, contact: str = "c1") -> int:
    world.ingest(world.wa, contact, f"{contact}-m1", 0)
    conv = world.conversation(world.wa, contact)
    with world.uow() as u:
        accept(u, world.a1, conv, now=at(1))
    return conv


def test_double_click_sends_once_and_bad_bodies_are_refused(world: World) -> None:
    conv = _accepted(world)
    with world.uow() as u:
        m1 = enqueue_reply(u, world.a1, conv, "hello", idempotency_key="click-1", now=at(2))
    with world.uow() as u:
        m2 = enqueue_reply(u, world.a1, conv, "hello", idempotency_key="click-1", now=at(2.01))
    assert m1.id == m2.id and m1.status == "PENDING" and m1.author_name == "Alice Agent"
    for body, why in (("   ", "empty"), ("x" * 4097, "limit is 4096")):
        with world.uow() as u, pytest.raises(InvalidInput, match=why):
            enqueue_reply(u, world.a1, conv, body, idempotency_key="k2", now=at(2))
    other = _accepted(world, "c2")
    with world.uow() as u, pytest.raises(Conflict, match="another conversation"):
        enqueue_reply(u, world.a1, other, "hello", idempotency_key="click-1", now=at(2))
    with world.uow() as u:
        assert u.session.execute(select(func.count()).select_from(Message)
                                 .where(Message.direction == "OUTBOUND")).scalar() == 1


def test_concurrent_workers_claim_disjoint_jobs_and_leases_expire(world: World) -> None:
    conv = _accepted(world)
    for i in range(40):
        with world.uow() as u:
            enqueue_reply(u, world.a1, conv, f"reply {i}", idempotency_key=f"k{i}", now=at(2))
    claimed: list[list[int]] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        with world.uow() as u:
            barrier.wait()
            claimed.append([j.message_id for j in claim_due(u, limit=15, now=at(3))])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [m for c in claimed for m in c]
    assert len(flat) == len(set(flat)) == 40
    with world.uow() as u:  # leased: nothing due until the lease runs out (a crashed worker)
        assert claim_due(u, now=at(3.5)) == []
    with world.uow() as u:
        again = claim_due(u, limit=100, now=at(3) + timedelta(seconds=61))
    assert len(again) == 40 and {j.attempts for j in again} == {2}


def test_failures_back_off_then_dead_letter_and_manager_retries(world: World) -> None:
    conv = _accepted(world)
    with world.uow() as u:
        msg = enqueue_reply(u, world.a1, conv, "hi", idempotency_key="k", now=at(2))
    now = at(2)
    for attempt in range(1, 4):
        with world.uow() as u:
            [job] = claim_due(u, now=now)
            assert job.attempts == attempt
        with world.uow() as u:
            record_failure(u, msg.id, token=job.token, error_code="130429", error_message="Rate limit hit", retryable=True,
                           max_attempts=3, now=now)
        with world.uow() as u:
            m = u.session.get(Message, msg.id)
            assert m is not None
            if attempt < 3:
                assert m.status == "PENDING" and m.next_attempt_at is not None
                assert 2 ** attempt <= (m.next_attempt_at - now).total_seconds() <= 2 ** attempt * 1.25
                now = m.next_attempt_at
            else:
                assert (m.status, m.is_dead_letter, m.error_code, m.error_message) == (
                    "FAILED", True, "130429", "Rate limit hit")
    with world.uow() as u:
        assert [d.id for d in list_dead_letters(u, world.manager)] == [msg.id]
    with world.uow() as u:
        assert retry_dead_letter(u, world.manager, msg.id, now=now).status == "PENDING"
    with world.uow() as u:
        [job] = claim_due(u, now=now)
        assert job.attempts == 1
    with world.uow() as u:
        record_failure(u, msg.id, token=job.token, error_code="131047", error_message="outside the 24 h window",
                       retryable=False, now=now)
    with world.uow() as u:
        m = u.session.get(Message, msg.id)
        assert m is not None and (m.status, m.error_code) == ("FAILED", "131047")


def test_first_human_reply_sets_first_response_but_bots_do_not(world: World) -> None:
    conv = _accepted(world)
    with world.uow() as u:
        bot = enqueue_bot_reply(u, Actor.system(world.org), conv, "We will answer soon", idempotency_key="bot-1", now=at(1.5))
    with world.uow() as u:
        human = enqueue_reply(u, world.a1, conv, "Hi, Alice here", idempotency_key="h-1", now=at(3))
    with world.uow() as u:
        jobs = claim_due(u, now=at(3))
        assert [j.message_id for j in jobs] == [bot.id, human.id]
    tokens = {j.message_id: j.token for j in jobs}
    with world.uow() as u:
        record_sent(u, bot.id, token=tokens[bot.id], provider_message_id="wamid.bot", sent_at=at(1.6))
    with world.uow() as u:
        assert get_conversation(u, world.a1, conv).first_response_at is None
    with world.uow() as u:
        record_sent(u, human.id, token=tokens[human.id], provider_message_id="wamid.h", sent_at=at(3.1))
    with world.uow() as u:
        record_sent(u, human.id, token=tokens[human.id], provider_message_id="wamid.h", sent_at=at(3.1))  # idempotent
        v = get_conversation(u, world.a1, conv)
    assert v.first_response_at == at(3.1) and not v.awaiting_reply
