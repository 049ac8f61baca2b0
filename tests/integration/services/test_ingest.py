"""Ingest: idempotency, conversation find-or-create, reopen, statuses forward-only, edits, watermarks."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from switchboard.db.schema import Contact, Conversation, ConversationEvent, Message, SyncCursor
from switchboard.services.conversations import accept, complete
from switchboard.services.inbox_views import get_conversation, get_thread
from switchboard.services.ingest import IngestResult, ingest_items
from switchboard.services.outbox import claim_due, enqueue_reply, record_sent
from switchboard.types import (
    AttachmentRef,
    ContactRef,
    Ignored,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    ParsedItem,
    ReadWatermark,
    StatusUpdate,
)

from .conftest import World, at, inbound


def _events(w: World, conv: int) -> list[str]:
    with w.uow() as u:
        return list(u.session.execute(select(ConversationEvent.type).where(
            ConversationEvent.conversation_id == conv).order_by(ConversationEvent.id)).scalars())


def test_batch_creates_contacts_conversations_and_is_idempotent(world: World) -> None:
    items: list[ParsedItem] = [inbound("c1", "m1", 0, "hi", "Carla"), inbound("c1", "m2", 1, "are you there?"),
                               inbound("c2", "m3", 2, "x" * 300), Ignored("status of a template")]
    with world.uow() as u:
        r = ingest_items(u, channel_id=world.wa, items=items, now=at(3), cursor=("all", "m3"))
        u.commit()
    assert (r.messages_created, r.conversations_created, r.ignored) == (3, 2, 1)
    with world.uow() as u:
        again = ingest_items(u, channel_id=world.wa, items=items, now=at(4))
        u.commit()
    assert (again.messages_created, again.messages_duplicate, again.conversations_created) == (0, 3, 0)
    conv = world.conversation(world.wa, "c1")
    view = get_conversation(world.uow().__enter__(), world.manager, conv)
    assert view.status == "PENDING" and view.unread_count == 2 and view.awaiting_reply
    assert view.contact_name == "Carla" and view.last_message_preview == "are you there?"
    assert view.last_message_at == at(1) and view.created_at == at(0)
    assert _events(world, conv) == ["CREATED", "MESSAGE_RECEIVED", "MESSAGE_RECEIVED"]
    with world.uow() as u:
        assert u.session.execute(select(func.count()).select_from(Message)).scalar() == 3
        long = get_conversation(u, world.manager, world.conversation(world.wa, "c2"))
        assert long.last_message_preview is not None and len(long.last_message_preview) == 200
        assert u.session.execute(select(SyncCursor.cursor)).scalar() == "m3"
        raw = u.session.execute(select(Message.raw).where(Message.provider_message_id == "m1")).scalar()
        assert raw == {"id": "m1"}


def test_duplicates_inside_one_batch_and_contact_profile_update(world: World) -> None:
    first = InboundMessage("m1", ContactRef("c1"), at(0), "hi")
    later = InboundMessage("m2", ContactRef("c1", display_name="Carla C", username="carla"), at(5), "hey",
                           attachments=(AttachmentRef("image", "image/jpeg", provider_media_id="media1"),))
    with world.uow() as u:
        r = ingest_items(u, channel_id=world.wa, items=[first, first, later], now=at(6))
        u.commit()
    assert (r.messages_created, r.messages_duplicate) == (2, 1)
    with world.uow() as u:
        c = u.session.execute(select(Contact)).scalar_one()
        assert (c.display_name, c.username, c.first_seen_at, c.last_seen_at) == ("Carla C", "carla", at(0), at(5))
        thread = get_thread(u, world.manager, world.conversation(world.wa, "c1"))
        assert [m.body for m in thread.items] == ["hi", "hey"]
        assert thread.items[1].attachments[0].kind == "image"


def test_completed_conversation_reopens_with_new_cycle(world: World) -> None:
    world.ingest(world.wa, "c1", "m1", 0)
    conv = world.conversation(world.wa, "c1")
    with world.uow() as u:
        accept(u, world.a1, conv, now=at(1))
    with world.uow() as u:
        complete(u, world.a1, conv, now=at(2))
    r = world.ingest(world.wa, "c1", "m2", 10, "one more thing")
    assert r.conversations_reopened == 1
    with world.uow() as u:
        v = get_conversation(u, world.manager, conv)
    assert (v.status, v.cycle_number, v.cycle_started_at, v.assigned_user_id) == ("PENDING", 2, at(10), None)
    assert _events(world, conv) == ["CREATED", "MESSAGE_RECEIVED", "ACCEPTED", "COMPLETED", "REOPENED",
                                    "MESSAGE_RECEIVED"]


def test_two_workers_ingesting_the_same_batch_make_one_message(world: World) -> None:
    for round_ in range(10):
        items = [inbound(f"c{round_}-{i}", f"r{round_}-m{i}", round_ + i / 10) for i in range(20)]
        barrier = threading.Barrier(2)
        results: list[IngestResult] = []

        def work(items: list[InboundMessage] = items, barrier: threading.Barrier = barrier,
                 results: list[IngestResult] = results) -> None:
            with world.uow() as u:
                barrier.wait()
                results.append(ingest_items(u, channel_id=world.wa, items=items, now=at(100)))
                u.commit()

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.messages_created for r in results) == [0, 20]
        assert sum(r.conversations_created for r in results) == 20
    with world.uow() as u:
        assert u.session.execute(select(func.count()).select_from(Message)).scalar() == 200
        assert u.session.execute(select(func.count()).select_from(Conversation)).scalar() == 200
        assert u.session.execute(select(func.max(Conversation.unread_count))).scalar() == 1
        assert u.session.execute(select(func.count()).select_from(ConversationEvent)
                                 .where(ConversationEvent.type == "MESSAGE_RECEIVED")).scalar() == 200


def _sent_reply(world: World, pmid: str = "out-1") -> tuple[int, int]:
    world.ingest(world.wa, "c1", "m1", 0)
    conv = world.conversation(world.wa, "c1")
    with world.uow() as u:
        accept(u, world.a1, conv, now=at(1))
    with world.uow() as u:
        msg = enqueue_reply(u, world.a1, conv, "hello Carla", idempotency_key="k1", now=at(2))
    with world.uow() as u:
        [job] = claim_due(u, now=at(2))
        assert job.message_id == msg.id and job.recipient_id == "c1"
    with world.uow() as u:
        record_sent(u, msg.id, token=job.token, provider_message_id=pmid, sent_at=at(2.1))
    return conv, msg.id


def _status(world: World, mid: int) -> tuple[str, object, object, object]:
    with world.uow() as u:
        m = u.session.get(Message, mid)
        assert m is not None
        return m.status, m.delivered_at, m.read_at, m.error_code


def test_statuses_only_move_forward(world: World) -> None:
    conv, mid = _sent_reply(world)
    with world.uow() as u:
        r = ingest_items(u, channel_id=world.wa, items=[
            StatusUpdate("out-1", "READ", at(5)), StatusUpdate("out-1", "DELIVERED", at(4)),
            StatusUpdate("unknown", "DELIVERED", at(4))])
        u.commit()
    assert (r.statuses_applied, r.statuses_ignored, r.unmatched_status_ids) == (2, 1, ("unknown",))
    assert _status(world, mid) == ("READ", at(4), at(5), None)
    with world.uow() as u:  # late delivered after read, and a FAILED after READ: ignored
        r = ingest_items(u, channel_id=world.wa, items=[
            StatusUpdate("out-1", "DELIVERED", at(6)), StatusUpdate("out-1", "FAILED", at(7), error_code="1")])
        u.commit()
    assert (r.statuses_applied, r.statuses_ignored) == (0, 2)
    assert _status(world, mid)[0] == "READ"
    assert _events(world, conv)[-3:] == ["MESSAGE_SENT", "MESSAGE_DELIVERED", "MESSAGE_READ"]


def test_failed_is_terminal_and_keeps_the_platform_error(world: World) -> None:
    conv, mid = _sent_reply(world)
    with world.uow() as u:
        ingest_items(u, channel_id=world.wa, items=[
            StatusUpdate("out-1", "FAILED", at(3), error_code="131047", error_message="Re-engagement message")])
        u.commit()
    with world.uow() as u:
        r = ingest_items(u, channel_id=world.wa, items=[StatusUpdate("out-1", "READ", at(4))])
        u.commit()
    assert r.statuses_ignored == 1
    assert _status(world, mid) == ("FAILED", None, None, "131047")
    assert _events(world, conv)[-1] == "MESSAGE_FAILED"


def test_read_watermark_marks_everything_before_it(world: World) -> None:
    conv, mid = _sent_reply(world)
    with world.uow() as u:
        r = ingest_items(u, channel_id=world.wa, items=[ReadWatermark("c1", "READ", at(3), at(3.5))])
        u.commit()
    assert r.statuses_applied == 1
    assert _status(world, mid) == ("READ", at(3.5), at(3.5), None)
    with world.uow() as u:
        r = ingest_items(u, channel_id=world.wa, items=[ReadWatermark("c1", "DELIVERED", at(3), at(3.6))])
        u.commit()
    assert r.statuses_applied == 0


def test_edits_deletions_and_native_echoes(world: World) -> None:
    world.ingest(world.wa, "c1", "m1", 0, "helo")
    conv = world.conversation(world.wa, "c1")
    echo = InboundMessage("e1", ContactRef("c1"), at(1), "sent from the phone app", direction="OUTBOUND",
                          author_kind="agent")
    with world.uow() as u:
        r = ingest_items(u, channel_id=world.wa, items=[
            MessageEdit("m1", "hello", at(0.5), raw={"edit": 1}), echo, MessageDeletion("zzz", at(2))])
        u.commit()
    assert (r.edits, r.messages_created, r.ignored) == (1, 1, 1)
    with world.uow() as u:
        thread = get_thread(u, world.manager, conv)
        assert [(m.body, m.direction, m.is_edited) for m in thread.items] == [
            ("hello", "INBOUND", True), ("sent from the phone app", "OUTBOUND", False)]
        v = get_conversation(u, world.manager, conv)
        assert not v.awaiting_reply and v.first_response_at == at(1)
        raw = u.session.execute(select(Message.raw).where(Message.provider_message_id == "m1")).scalar()
        assert raw is not None and raw["id"] == "m1" and raw["edit"]["raw"] == {"edit": 1}
    with world.uow() as u:
        r = ingest_items(u, channel_id=world.wa, items=[MessageDeletion("m1", at(3))])
        u.commit()
    assert r.deletions == 1
    with world.uow() as u:
        assert get_thread(u, world.manager, conv).items[0].is_deleted


def test_new_conversation_state_counts_only_the_messages_that_were_really_inserted(world: World) -> None:
    """A message id taken by another worker while this batch runs is not applied to the new conversation."""
    first = world.uow().__enter__()
    ingest_items(first, channel_id=world.wa, items=[inbound("alice", "shared", 0, "from alice")],
                 now=at(0))  # holds the message id, uncommitted
    results: list[IngestResult] = []

    def second() -> None:
        with world.uow() as u:
            results.append(ingest_items(u, channel_id=world.wa, now=at(2), items=[
                inbound("bob", "shared", 1, "same id"), inbound("bob", "own", 2, "bob's own")]))
            u.commit()

    t = threading.Thread(target=second)
    t.start()
    t.join(0.5)  # blocked on the unique key of "shared" until the first worker commits
    first.commit()
    first.session.close()
    t.join()
    assert (results[0].messages_created, results[0].messages_duplicate, results[0].conversations_created) == (1, 1, 1)
    bob = world.conversation(world.wa, "bob")
    with world.uow() as u:
        v = get_conversation(u, world.manager, bob)
    assert (v.unread_count, v.last_message_preview, v.last_message_at, v.created_at) == (1, "bob's own", at(2), at(1))
    assert _events(world, bob) == ["CREATED", "MESSAGE_RECEIVED"]


def test_a_raw_payload_json_encoders_refuse_is_stored_all_the_same(world: World) -> None:
    """A platform payload with an integer beyond 64 bits (orjson refuses it) still ingests, exactly."""
    m = inbound("c9", "big1", 0, "big numbers")
    big = InboundMessage(m.provider_message_id, m.contact, m.sent_at, m.body,
                         raw={"id": "big1", "n": 2**70, "nested": {"k": [2**65]}})
    with world.uow() as u:
        r = ingest_items(u, channel_id=world.wa, items=[big, inbound("c9", "small1", 1, "and small")], now=at(2))
        u.commit()
    assert r.messages_created == 2
    with world.uow() as u:
        raw = u.session.execute(select(Message.raw).where(Message.provider_message_id == "big1")).scalar()
    assert raw == {"id": "big1", "n": 2**70, "nested": {"k": [2**65]}}


def test_deleting_a_contact_deletes_its_conversations_messages_events_and_attachments(world: World) -> None:
    """Messages and events keep no foreign key to their conversation (migration 0015): the trigger
    conversations_cascade deletes them with it, whatever deleted it (here a contact's deletion)."""
    from sqlalchemy import delete

    from switchboard.db.schema import Attachment

    items: list[ParsedItem] = [
        InboundMessage("p1", ContactRef("gone"), at(0), "photo",
                       attachments=(AttachmentRef("image", "image/jpeg", provider_media_id="media1"),)),
        inbound("gone", "p2", 1, "still there?"), inbound("kept", "p3", 2, "hello")]
    with world.uow() as u:
        ingest_items(u, channel_id=world.wa, items=items, now=at(3))
    gone, kept = world.conversation(world.wa, "gone"), world.conversation(world.wa, "kept")
    with world.uow() as u:
        u.session.execute(delete(Contact).where(Contact.provider_contact_id == "gone"))

    def count(model: type, where: object) -> int:
        with world.uow() as u:
            return int(u.session.execute(select(func.count()).select_from(model).where(where)).scalar_one())  # type: ignore[arg-type]
    assert count(Conversation, Conversation.id == gone) == 0
    assert count(Message, Message.conversation_id == gone) == 0
    assert count(ConversationEvent, ConversationEvent.conversation_id == gone) == 0
    assert count(Attachment, Attachment.provider_media_id == "media1") == 0
    assert count(Message, Message.conversation_id == kept) == 1
    assert count(ConversationEvent, ConversationEvent.conversation_id == kept) == 2
