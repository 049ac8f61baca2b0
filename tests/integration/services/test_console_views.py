"""The read side behind the console: the inbox's filter choices and unread filter, the waiting list."""

from __future__ import annotations

import pytest

from switchboard.errors import PermissionDenied
from switchboard.services import conversations as conv
from switchboard.services import inbox_views

from .conftest import World


def test_filter_choices_are_the_channels_the_actor_may_view(world: World) -> None:
    with world.uow() as u:
        mine = inbox_views.inbox_filters(u, world.a1)
        everything = inbox_views.inbox_filters(u, world.manager)
        nothing = inbox_views.inbox_filters(u, world.nobody)
    assert [c for c, _ in mine.channels] == [world.wa]
    assert {c for c, _ in everything.channels} == {world.wa, world.tg}
    assert nothing.channels == () and nothing.assignees  # the people are the same for everyone
    assert world.outsider.user_id not in {u for u, _ in everything.assignees}  # never another organization's


def test_unread_only_keeps_the_keyset_order(world: World) -> None:
    world.ingest(world.wa, "c1", "m1", 1)
    world.ingest(world.wa, "c2", "m2", 2)
    world.ingest(world.wa, "c3", "m3", 3)
    read = world.conversation(world.wa, "c2")
    with world.uow() as u:
        conv.accept(u, world.a1, read)
        conv.mark_read(u, world.a1, read)
    with world.uow() as u:
        first = inbox_views.list_conversations(u, world.a1, unread_only=True, limit=1)
        rest = inbox_views.list_conversations(u, world.a1, unread_only=True, cursor=first.next_cursor, limit=1)
        everything = inbox_views.list_conversations(u, world.a1, limit=10)
    assert [c.id for c in first.items + rest.items] == [world.conversation(world.wa, c) for c in ("c3", "c1")]
    assert read in [c.id for c in everything.items]


def test_waiting_list_longest_wait_first_for_managers_only(world: World) -> None:
    for contact, minutes in (("late", 30), ("early", 1), ("middle", 10)):
        world.ingest(world.wa, contact, f"w-{contact}", minutes)
    world.ingest(world.tg, "tg-1", "w-tg", 5)
    with world.uow() as u:
        conv.accept(u, world.manager, world.conversation(world.wa, "middle"))
    with world.uow() as u:
        waiting = inbox_views.waiting_conversations(u, world.manager)
        with pytest.raises(PermissionDenied):
            inbox_views.waiting_conversations(u, world.a1)
    assert [c.id for c in waiting] == [world.conversation(world.wa, "early"), world.conversation(world.tg, "tg-1"),
                                       world.conversation(world.wa, "late")]
    assert [inbox_views.waiting_since(c) for c in waiting] == sorted(inbox_views.waiting_since(c) for c in waiting)
