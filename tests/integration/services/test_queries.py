"""Keyset pagination of queues and threads, filters, search, counts, contact profile."""

from __future__ import annotations

import pytest

from switchboard.errors import InvalidInput
from switchboard.services.conversations import accept, complete
from switchboard.services.inbox_views import contact_profile, get_thread, list_conversations, queue_counts
from switchboard.services.ingest import ingest_items

from .conftest import World, at, inbound


def test_keyset_pagination_walks_every_conversation_once(world: World) -> None:
    items = [inbound(f"c{i:03}", f"m{i}", i % 37, text=f"order {i}") for i in range(130)]  # ties in time
    with world.uow() as u:
        ingest_items(u, channel_id=world.wa, items=items, now=at(60))
        u.commit()
    seen: list[tuple[object, int]] = []
    cursor = None
    with world.uow() as u:
        while True:
            page = list_conversations(u, world.manager, cursor=cursor, limit=50)
            seen.extend((v.last_message_at, v.id) for v in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    assert len(seen) == 130 and len({i for _, i in seen}) == 130
    assert seen == sorted(seen, reverse=True)
    with world.uow() as u, pytest.raises(InvalidInput, match="cursor is malformed"):
        list_conversations(u, world.manager, cursor="garbage!")


def test_queues_filters_search_and_visibility(world: World) -> None:
    world.ingest(world.wa, "alice", "m1", 0, "my parcel is late", name="Alice Doe")
    world.ingest(world.wa, "bob", "m2", 1, "refund please", name="Bob Roe")
    world.ingest(world.tg, "carol", "m3", 2, "parcel?", name="Carol")
    bob = world.conversation(world.wa, "bob")
    with world.uow() as u:
        accept(u, world.a1, bob, now=at(3))
    with world.uow() as u:
        names = lambda **kw: [v.contact_name for v in list_conversations(u, **kw).items]  # noqa: E731
        assert names(actor=world.manager) == ["Carol", "Bob Roe", "Alice Doe"]
        assert names(actor=world.a1) == ["Bob Roe", "Alice Doe"]  # no view on tg
        assert names(actor=world.a2) == ["Carol", "Bob Roe", "Alice Doe"]
        assert names(actor=world.a1, queue="mine") == ["Bob Roe"]
        assert names(actor=world.a1, queue="unassigned") == ["Alice Doe"]
        assert names(actor=world.manager, search="parcel") == ["Carol", "Alice Doe"]
        assert names(actor=world.manager, search="roe") == ["Bob Roe"]
        assert names(actor=world.manager, search="100%") == []
        assert names(actor=world.manager, channel_id=world.tg) == ["Carol"]
        assert names(actor=world.manager, assigned_user_id=world.a1.user_id) == ["Bob Roe"]
        assert names(actor=world.manager, status="ASSIGNED") == ["Bob Roe"]
        assert queue_counts(u, world.a1) == {"unassigned": 1, "mine": 1, "all_open": 2}
        assert queue_counts(u, world.manager) == {"unassigned": 2, "mine": 0, "all_open": 3}
        assert queue_counts(u, world.nobody) == {"unassigned": 0, "mine": 0, "all_open": 0}
        with pytest.raises(InvalidInput, match="unknown status"):
            list_conversations(u, world.manager, status="CLOSED")
    with world.uow() as u:
        complete(u, world.a1, bob, now=at(4))
    with world.uow() as u:
        names = lambda **kw: [v.contact_name for v in list_conversations(u, **kw).items]  # noqa: E731
        assert names(actor=world.manager, status="OPEN") == ["Carol", "Alice Doe"]  # not completed
        assert names(actor=world.manager, status="COMPLETED") == ["Bob Roe"]


def test_thread_pages_newest_first_displayed_oldest_first(world: World) -> None:
    items = [inbound("c1", f"m{i:02}", i, text=f"line {i}") for i in range(25)]
    with world.uow() as u:
        ingest_items(u, channel_id=world.wa, items=items, now=at(30))
        u.commit()
    conv = world.conversation(world.wa, "c1")
    with world.uow() as u:
        p1 = get_thread(u, world.a1, conv, limit=10)
        p2 = get_thread(u, world.a1, conv, before=p1.next_cursor, limit=10)
        p3 = get_thread(u, world.a1, conv, before=p2.next_cursor, limit=10)
    assert [m.body for m in p1.items] == [f"line {i}" for i in range(15, 25)]
    assert [m.body for m in p2.items] == [f"line {i}" for i in range(5, 15)]
    assert [m.body for m in p3.items] == [f"line {i}" for i in range(5)] and p3.next_cursor is None


def test_contact_profile_lists_conversations_across_channels(world: World) -> None:
    # the same person on WhatsApp twice (one contact per provider) and once on Telegram
    world.ingest(world.wa, "+49111", "m1", 0, name="Dora")
    with world.uow() as u:
        cid = list_conversations(u, world.manager).items[0].contact_id
        prof = contact_profile(u, world.manager, cid)
    assert prof.display_name == "Dora" and [c.channel_key for c in prof.conversations] == ["wa-main"]


def test_search_matches_contacts_or_bodies_once_each_and_pages_in_order(world: World) -> None:
    items = []
    for i in range(60):
        name = f"Zed {i}" if i % 3 == 0 else f"Person {i}"
        body = "about zedonk" if i % 4 == 0 else ("50% off_sale" if i == 7 else f"hello {i}")
        items.append(inbound(f"c{i:02}", f"m{i}", i % 17, text=body, name=name))
    items.append(inbound("c01", "m-late", 30, text="a second message, also about ZEDONK"))
    with world.uow() as u:
        ingest_items(u, channel_id=world.wa, items=items, now=at(40))
        u.commit()
    expected = {f"Zed {i}" if i % 3 == 0 else f"Person {i}" for i in range(60) if i % 3 == 0 or i % 4 == 0}
    expected.add("Person 1")  # its second message matches
    seen: list[tuple[object, int, str]] = []
    cursor = None
    with world.uow() as u:
        while True:
            page = list_conversations(u, world.manager, search="  zed ", cursor=cursor, limit=7)
            seen.extend((v.last_message_at, v.id, v.contact_name) for v in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert [n for *_, n in seen if n not in expected] == []
        assert {n for *_, n in seen} == expected and len(seen) == len(expected)  # each conversation once
        assert [(t, i) for t, i, _ in seen] == sorted(((t, i) for t, i, _ in seen), reverse=True)
        only = lambda term: [v.contact_name for v in list_conversations(u, world.manager, search=term).items]  # noqa: E731
        assert only("50%") == ["Person 7"] and only("f_s") == ["Person 7"]
        assert only("0% offxsale") == [] and only("f%s") == []  # % and _ are literal characters
        assert only("c07") == ["Person 7"]  # the platform contact id
        assert list_conversations(u, world.a1, search="zed", queue="mine").items == []
        assert list_conversations(u, world.nobody, search="zed").items == []


def test_search_finds_a_message_before_and_after_its_trigrams_leave_the_pending_list(world: World) -> None:
    """Ingest only appends a body's trigrams to the index's pending list (64 MB, migration 0016); the
    maintain-inbox flow merges the list. A search finds the message either way, and the list empties."""
    from sqlalchemy import text

    from switchboard.services.search_index import merge_pending

    with world.uow() as u:
        assert u.session.execute(text(
            "select reloptions from pg_class where relname = 'ix_messages_body_trgm'")).scalar_one() == [
                "gin_pending_list_limit=65536"]
    world.ingest(world.wa, "dora", "m1", 0, "where is my wombat", name="Dora")
    with world.uow() as u:
        assert [v.contact_name for v in list_conversations(u, world.manager, search="wombat").items] == ["Dora"]
    with world.uow() as u:
        assert (merge_pending(u) or 0) >= 1
        u.commit()
    with world.uow() as u:
        assert merge_pending(u) == 0  # nothing left pending
    with world.uow() as u:
        u.session.execute(text("set local enable_seqscan = off"))  # the index, not a scan of the table
        assert [v.contact_name for v in list_conversations(u, world.manager, search="wombat").items] == ["Dora"]


def test_merging_the_search_index_is_skipped_for_a_user_who_may_not(world: World) -> None:
    """Only the index's owner may merge its pending list: for another database user the merge reports
    None (autovacuum does it) and the caller's transaction goes on."""
    from sqlalchemy import text

    from switchboard.services.search_index import merge_pending

    with world.uow() as u:
        u.session.execute(text("do $$ begin create role sb_not_owner; exception when duplicate_object then null; end $$"))
        u.session.execute(text("grant select on messages to sb_not_owner"))
        u.session.execute(text("set local role sb_not_owner"))
        assert merge_pending(u) is None
        assert u.session.execute(text("select count(*) from messages")).scalar_one() >= 0  # still usable
