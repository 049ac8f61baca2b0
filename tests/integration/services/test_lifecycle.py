"""Accept/release/complete/reassign/reopen, the race to accept, presence release and auto-assignment."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, update

from switchboard.db.schema import AgentPresence, ConversationEvent, Organization, PresenceEvent, User
from switchboard.errors import Conflict, InvalidInput, PermissionDenied
from switchboard.services.assignment import assign_pending
from switchboard.services.conversations import accept, complete, mark_read, reassign, release, reopen
from switchboard.services.inbox_views import get_conversation, list_agents, queue_counts
from switchboard.services.presence import heartbeat, sweep

from .conftest import World, at


def _events(w: World, conv: int) -> list[tuple[str, int | None]]:
    with w.uow() as u:
        return [(r.type, r.actor_user_id) for r in u.session.execute(
            select(ConversationEvent.type, ConversationEvent.actor_user_id)
            .where(ConversationEvent.conversation_id == conv).order_by(ConversationEvent.id))]


def test_eight_threads_accepting_the_same_conversation_have_one_winner(world: World) -> None:
    agents = [world.a1, world.a2, world.manager, world.admin]
    for round_ in range(50):
        world.ingest(world.wa, f"race{round_}", f"race-m{round_}", round_)
        conv = world.conversation(world.wa, f"race{round_}")
        barrier = threading.Barrier(8)
        wins: list[int] = []
        losses: list[str] = []

        def go(i: int, conv: int = conv, barrier: threading.Barrier = barrier,
               wins: list[int] = wins, losses: list[str] = losses, when: float = round_ + 0.5) -> None:
            actor = agents[i % len(agents)]
            with world.uow() as u:
                barrier.wait()
                try:
                    v = accept(u, actor, conv, now=at(when))
                    wins.append(v.assigned_user_id or 0)
                except Conflict as e:
                    losses.append(str(e))

        threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # same-agent threads may "win" idempotently; the conversation has exactly one assignee
        assert len(set(wins)) == 1, wins
        assert len(wins) + len(losses) == 8
        assert all("already accepted by" in m for m in losses)
        assert [t for t, _ in _events(world, conv)].count("ACCEPTED") == 1


def test_loser_is_told_who_won(world: World) -> None:
    world.ingest(world.wa, "c1", "m1", 0)
    conv = world.conversation(world.wa, "c1")
    with world.uow() as u:
        accept(u, world.a1, conv, now=at(1))
    with world.uow() as u, pytest.raises(Conflict, match="already accepted by Alice Agent"):
        accept(u, world.a2, conv, now=at(2))
    with world.uow() as u:  # accepting again is a no-op
        assert accept(u, world.a1, conv, now=at(3)).assigned_user_id == world.a1.user_id
    assert [t for t, _ in _events(world, conv)].count("ACCEPTED") == 1


def test_full_lifecycle_writes_events_with_actors(world: World) -> None:
    world.ingest(world.wa, "c1", "m1", 0)
    conv = world.conversation(world.wa, "c1")
    with world.uow() as u:
        accept(u, world.a1, conv, now=at(1))
    with world.uow() as u, pytest.raises(PermissionDenied, match="only the assignee or a manager"):
        release(u, world.a2, conv, now=at(2))
    with world.uow() as u:
        assert release(u, world.a1, conv, now=at(2)).status == "PENDING"
    with world.uow() as u:
        assert release(u, world.a1, conv, now=at(2.5)).status == "PENDING"  # idempotent
    with world.uow() as u:
        v = reassign(u, world.manager, conv, world.a2.user_id, now=at(3))
        assert (v.status, v.assigned_user_name) == ("ASSIGNED", "Bob Agent")
    with world.uow() as u, pytest.raises(PermissionDenied, match="only admins and managers"):
        reassign(u, world.a2, conv, world.a1.user_id, now=at(3))
    with world.uow() as u, pytest.raises(InvalidInput, match="may not view channel 'wa-main'"):
        reassign(u, world.manager, conv, world.nobody.user_id, now=at(3))
    with world.uow() as u, pytest.raises(PermissionDenied, match="assigned to Bob Agent"):
        complete(u, world.a1, conv, now=at(4))
    with world.uow() as u:
        assert complete(u, world.a2, conv, now=at(4)).status == "COMPLETED"
    with world.uow() as u:
        complete(u, world.a2, conv, now=at(4.5))  # idempotent
    with world.uow() as u, pytest.raises(Conflict, match="completed"):
        accept(u, world.a1, conv, now=at(5))
    with world.uow() as u:
        v = reopen(u, world.a1, conv, now=at(6))
        assert (v.status, v.cycle_number, v.cycle_started_at) == ("PENDING", 2, at(6))
    with world.uow() as u:
        mark_read(u, world.a1, conv)
        assert get_conversation(u, world.a1, conv).unread_count == 0
    m, a1, a2 = world.manager.user_id, world.a1.user_id, world.a2.user_id
    assert _events(world, conv) == [
        ("CREATED", None), ("MESSAGE_RECEIVED", None), ("ACCEPTED", a1), ("RELEASED", a1),
        ("REASSIGNED", m), ("COMPLETED", a2), ("REOPENED", a1)]


def test_presence_sweep_releases_after_grace_period(world: World) -> None:
    world.ingest(world.wa, "c1", "m1", 0)
    conv = world.conversation(world.wa, "c1")
    with world.uow() as u:
        heartbeat(u, world.a1, now=at(0))
    with world.uow() as u:
        accept(u, world.a1, conv, now=at(1))
    for s in range(1, 4):  # heartbeats every 30 s: at most one presence row per minute
        with world.uow() as u:
            heartbeat(u, world.a1, now=at(s / 2))
    with world.uow() as u:
        assert sweep(u, now=at(4)) == []  # 2.5 min silent: AWAY, still assigned
        assert u.session.execute(select(AgentPresence.state)).scalar() == "AWAY"
    with world.uow() as u:
        assert sweep(u, now=at(7)) == []  # 5.5 min silent: OFFLINE, grace starts
    with world.uow() as u:
        assert sweep(u, now=at(12.5)) == [conv]
        assert get_conversation(u, world.manager, conv).status == "PENDING"
        states = list(u.session.execute(select(PresenceEvent.state).order_by(PresenceEvent.id)).scalars())
    assert states == ["ONLINE", "ONLINE", "AWAY", "OFFLINE"]
    assert _events(world, conv)[-1] == ("AGENT_DISCONNECTED", world.a1.user_id)


def test_auto_assign_round_robin_capacity_and_drain(world: World) -> None:
    with world.uow() as u:
        u.session.execute(update(Organization).where(Organization.id == world.org).values(auto_assign=True))
        u.session.execute(update(User).where(User.id.in_([world.a1.user_id, world.a2.user_id]))
                          .values(max_concurrent=2))
        u.commit()
    with world.uow() as u:
        heartbeat(u, world.a1, now=at(0))
    with world.uow() as u:
        heartbeat(u, world.a2, now=at(0))
    for i in range(5):
        world.ingest(world.wa, f"c{i}", f"m{i}", 1 + i)
    convs = [world.conversation(world.wa, f"c{i}") for i in range(5)]
    with world.uow() as u:
        owners = [get_conversation(u, world.manager, c).assigned_user_id for c in convs]
    assert owners[4] is None and sorted(o for o in owners if o) == sorted([world.a1.user_id, world.a2.user_id] * 2)
    assert owners[0] != owners[1]  # round robin
    with world.uow() as u:
        complete(u, world.a1, convs[owners.index(world.a1.user_id)], now=at(10))
    with world.uow() as u:  # the freed slot drained the backlog
        assert get_conversation(u, world.manager, convs[4]).assigned_user_id == world.a1.user_id
        assert assign_pending(u, world.org, now=at(11)) == []
        counts = queue_counts(u, world.a1)
        assert counts == {"unassigned": 0, "mine": 2, "all_open": 4}
        agents = {a.email: a for a in list_agents(u, world.manager)}
    assert agents["a1@acme.test"].presence == "ONLINE" and agents["a1@acme.test"].open_assigned == 2
    with world.uow() as u:
        n = u.session.execute(select(func.count()).select_from(ConversationEvent).where(
            ConversationEvent.type == "ACCEPTED")).scalar()
    assert n == 5


def test_auto_assign_is_off_by_default(world: World) -> None:
    with world.uow() as u:
        heartbeat(u, world.a1, now=at(0))
    world.ingest(world.wa, "c1", "m1", 1)
    with world.uow() as u:
        assert assign_pending(u, world.org, now=at(2)) == []
        assert get_conversation(u, world.manager, world.conversation(world.wa, "c1")).status == "PENDING"
