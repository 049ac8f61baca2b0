"""Authorization matrix: roles x channel permissions x actions, including another organization."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

import pytest
from sqlalchemy import update

from switchboard.db.schema import User
from switchboard.errors import NotFound, PermissionDenied
from switchboard.policy import actor_for_user, visible_channel_ids
from switchboard.services.conversations import accept, complete, reassign
from switchboard.services.inbox_views import (
    contact_profile,
    get_conversation,
    get_thread,
    list_agents,
    list_conversations,
)
from switchboard.services.outbox import enqueue_reply
from switchboard.types import Actor

from .conftest import World, add_user, at

OK, DENIED, MISSING = "ok", "denied", "missing"
ACTORS = ("admin", "manager", "a1", "viewer", "nobody", "outsider", "disabled")
_n = count()


def _fresh(world: World) -> int:
    i = next(_n)
    world.ingest(world.wa, f"acc{i}", f"acc-m{i}", i / 100, text=f"needle {i}")
    return world.conversation(world.wa, f"acc{i}")


def _outcome(fn: Callable[[], object]) -> str:
    try:
        fn()
    except PermissionDenied:
        return DENIED
    except NotFound:
        return MISSING
    return OK


def _actor(world: World, name: str) -> Actor:
    if name == "disabled":
        return world.disabled  # type: ignore[attr-defined]
    return getattr(world, name)


@pytest.fixture
def matrix_world(world: World) -> World:
    d = add_user(world.engine, world.org, "gone@acme.test", "manager", "Gus Gone")
    with world.uow() as u:
        u.session.execute(update(User).where(User.id == d.user_id).values(status="disabled"))
        u.commit()
    world.disabled = d  # type: ignore[attr-defined]
    return world


def _run(world: World, action: str, actor: Actor) -> str:
    conv = _fresh(world)
    with world.uow() as u:
        if action == "view":
            return _outcome(lambda: get_conversation(u, actor, conv))
        if action == "thread":
            return _outcome(lambda: get_thread(u, actor, conv))
        if action == "accept":
            return _outcome(lambda: accept(u, actor, conv, now=at(1)))
        if action == "complete_pending":
            return _outcome(lambda: complete(u, actor, conv, now=at(1)))
        if action == "reassign":
            return _outcome(lambda: reassign(u, actor, conv, world.a2.user_id, now=at(1)))
        if action == "reply_when_assigned":
            try:
                with world.uow() as m:
                    reassign(m, world.manager, conv, actor.user_id, now=at(1))
            except (NotFound, PermissionDenied, ValueError, Exception):  # noqa: BLE001 - nobody/outsider
                pass
            return _outcome(lambda: enqueue_reply(u, actor, conv, "hi", idempotency_key=f"k{conv}", now=at(2)))
        if action == "contact_profile":
            cid = get_conversation(u, world.manager, conv).contact_id
            return _outcome(lambda: contact_profile(u, actor, cid))
        if action == "list_agents":
            return _outcome(lambda: list_agents(u, actor))
        if action == "listed":
            handle = get_conversation(u, world.manager, conv).contact_handle
            try:
                page = list_conversations(u, actor, search=handle, limit=200)
            except PermissionDenied:
                return DENIED
            return OK if any(v.id == conv for v in page.items) else MISSING
    raise AssertionError(action)


EXPECTED = {
    #                    admin   manager a1      viewer  nobody  outsider disabled
    "view":             (OK,     OK,     OK,     OK,     DENIED, MISSING, DENIED),
    "thread":           (OK,     OK,     OK,     OK,     DENIED, MISSING, DENIED),
    "accept":           (OK,     OK,     OK,     DENIED, DENIED, MISSING, DENIED),
    "complete_pending": (OK,     OK,     DENIED, DENIED, DENIED, MISSING, DENIED),
    "reassign":         (OK,     OK,     DENIED, DENIED, DENIED, MISSING, DENIED),
    "reply_when_assigned": (OK,  OK,     OK,     DENIED, DENIED, MISSING, DENIED),
    "contact_profile":  (OK,     OK,     OK,     OK,     DENIED, MISSING, DENIED),
    "list_agents":      (OK,     OK,     DENIED, DENIED, DENIED, OK,      DENIED),
    "listed":           (OK,     OK,     OK,     OK,     MISSING, MISSING, DENIED),
}


@pytest.mark.parametrize("action", sorted(EXPECTED))
def test_authorization_matrix(matrix_world: World, action: str) -> None:
    got = tuple(_run(matrix_world, action, _actor(matrix_world, name)) for name in ACTORS)
    assert dict(zip(ACTORS, got, strict=True)) == dict(zip(ACTORS, EXPECTED[action], strict=True))


def test_refusals_say_why(world: World) -> None:
    conv = _fresh(world)
    with world.uow() as u:
        accept(u, world.a1, conv, now=at(1))
    with world.uow() as u, pytest.raises(PermissionDenied, match="accept it before replying"):
        enqueue_reply(u, world.a2, conv, "hi", idempotency_key="x", now=at(2))
    with world.uow() as u, pytest.raises(PermissionDenied, match="no 'view' permission on channel 'wa-main'"):
        get_conversation(u, world.nobody, conv)
    with world.uow() as u, pytest.raises(PermissionDenied, match="no 'send' permission"):
        accept(u, world.viewer, _fresh(world), now=at(1))
    with world.uow() as u, pytest.raises(NotFound, match="not found"):
        get_conversation(u, world.outsider, conv)
    with world.uow() as u:
        assert visible_channel_ids(u, world.a1) == {world.wa}
        assert visible_channel_ids(u, world.a2) == {world.wa, world.tg}
        assert visible_channel_ids(u, world.manager) is None
        assert actor_for_user(u, world.a1.user_id) == world.a1


def test_a_stale_actor_is_rechecked(world: World) -> None:
    conv = _fresh(world)
    with world.uow() as u:
        u.session.execute(update(User).where(User.id == world.manager.user_id).values(role="agent"))
        u.commit()
    with world.uow() as u, pytest.raises(PermissionDenied, match="only admins and managers"):
        reassign(u, world.manager, conv, world.a1.user_id, now=at(1))
