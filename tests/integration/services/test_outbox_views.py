"""The manager's outbox (filters, pages, cancel, retry) and saved replies, on a real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from switchboard.auth.audit import list_audit
from switchboard.db.schema import ConversationEvent, Message
from switchboard.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from switchboard.services.conversations import accept
from switchboard.services.outbox import (
    claim_due,
    enqueue_reply,
    record_failure,
    record_sent,
    retry_dead_letter,
)
from switchboard.services.outbox_views import DEAD_LETTER, cancel_pending, list_outbox
from switchboard.services.saved_replies import (
    create_saved_reply,
    delete_saved_reply,
    list_saved_replies,
    render_saved_reply,
    update_saved_reply,
)
from tests.helpers import lease

from .conftest import World, at


def _replies(world: World) -> dict[str, int]:
    """Four replies of a1 on WhatsApp: sent, dead letter, pending, pending (later)."""
    world.ingest(world.wa, "4911", "in-1", 0, name="Grace Hopper")
    conv = world.conversation(world.wa, "4911")
    with world.uow() as u:
        accept(u, world.a1, conv, now=at(1))
    ids = {}
    for i, name in enumerate(("sent", "dead", "pending", "later")):
        with world.uow() as u:
            ids[name] = enqueue_reply(u, world.a1, conv, f"reply {name}", idempotency_key=f"k-{name}",
                                      now=at(2 + i)).id
    with world.uow() as u:
        record_sent(u, ids["sent"], token=lease(u, ids["sent"], at(10)), provider_message_id="wamid.out1",
                    sent_at=at(10))
        record_failure(u, ids["dead"], token=lease(u, ids["dead"], at(10)), error_code="131026", error_message="undeliverable", retryable=False,
                       now=at(10))
    return {"conversation": conv, **ids}


def test_outbox_lists_filters_and_pages(world: World) -> None:
    ids = _replies(world)
    with world.uow() as u:
        everything = list_outbox(u, world.manager)
        assert [m.id for m in everything.items] == [ids["later"], ids["pending"], ids["dead"], ids["sent"]]
        sent = next(m for m in everything.items if m.id == ids["sent"])
        assert (sent.status, sent.agent_name, sent.channel_name, sent.contact_name) == (
            "SENT", "Alice Agent", "WhatsApp", "Grace Hopper")
        assert sent.sent_at == at(10) and sent.created_at is not None
        dead = next(m for m in everything.items if m.id == ids["dead"])
        assert dead.is_dead_letter and dead.error_code == "131026" and dead.retryable and dead.sent_at is None
        assert [m.id for m in list_outbox(u, world.manager, status="PENDING").items] == [ids["later"], ids["pending"]]
        assert [m.id for m in list_outbox(u, world.manager, status=DEAD_LETTER).items] == [ids["dead"]]
        assert list_outbox(u, world.manager, channel_id=world.tg).items == []
        assert len(list_outbox(u, world.manager, agent_user_id=world.a1.user_id).items) == 4
        assert list_outbox(u, world.manager, agent_user_id=world.a2.user_id).items == []
        created = sorted(m.created_at for m in everything.items)
        window = list_outbox(u, world.manager, created_from=created[1], created_to=created[3])
        assert len(window.items) == 2
        first = list_outbox(u, world.manager, limit=3)
        assert len(first.items) == 3 and first.next_cursor is not None
        rest = list_outbox(u, world.manager, limit=3, cursor=first.next_cursor)
        assert [m.id for m in rest.items] == [ids["sent"]] and rest.next_cursor is None
        with pytest.raises(InvalidInput, match="unknown status"):
            list_outbox(u, world.manager, status="LOST")
        with pytest.raises(InvalidInput, match="cursor"):
            list_outbox(u, world.manager, cursor="abc")
        with pytest.raises(InvalidInput, match="ends before"):
            list_outbox(u, world.manager, created_from=at(5), created_to=at(4))
        with pytest.raises(PermissionDenied):
            list_outbox(u, world.a1)
        assert list_outbox(u, world.outsider).items == []  # another organization sees only its own


def test_cancel_pending_then_retry(world: World) -> None:
    ids = _replies(world)
    with world.uow() as u:
        view = cancel_pending(u, world.manager, ids["pending"], now=at(20))
    assert (view.status, view.error_code, view.error_message) == ("FAILED", "cancelled",
                                                                  "cancelled by manager@acme.test")
    with world.uow() as u:
        again = cancel_pending(u, world.manager, ids["pending"], now=at(21))  # idempotent
        assert again.error_message == "cancelled by manager@acme.test"
        event = u.session.execute(select(ConversationEvent.type, ConversationEvent.actor_user_id, ConversationEvent.data)
                                  .where(ConversationEvent.message_id == ids["pending"])).all()
        assert [(e.type, e.actor_user_id, e.data["error_code"]) for e in event] == [
            ("MESSAGE_FAILED", world.manager.user_id, "cancelled")]
        assert [a.action for a in list_audit(u, world.admin, action_prefix="outbox.")] == ["outbox.cancelled"]
        # a cancelled message is never claimed
        assert ids["pending"] not in [j.message_id for j in claim_due(u, now=at(30), lease_seconds=1)]
    with world.uow() as u, pytest.raises(Conflict, match="SENT"):
        cancel_pending(u, world.manager, ids["sent"])
    with world.uow() as u, pytest.raises(NotFound):
        cancel_pending(u, world.outsider, ids["later"])
    with world.uow() as u, pytest.raises(PermissionDenied):
        cancel_pending(u, world.a1, ids["later"])
    with world.uow() as u:  # retried: pending again, fresh attempts
        assert retry_dead_letter(u, world.manager, ids["pending"], now=at(22)).status == "PENDING"


def test_cancel_refuses_a_message_a_worker_is_sending(world: World) -> None:
    ids = _replies(world)
    with world.uow() as u:
        u.session.execute(update(Message).where(Message.id != ids["later"], Message.status == "PENDING")
                          .values(next_attempt_at=at(100)))  # only "later" is due
        jobs = claim_due(u, now=at(30), lease_seconds=60)
        assert [j.message_id for j in jobs] == [ids["later"]]
    with world.uow() as u, pytest.raises(Conflict, match="being sent right now"):
        cancel_pending(u, world.manager, ids["later"], now=at(30) + timedelta(seconds=10))
    with world.uow() as u:  # the lease ran out (the worker died): it may be cancelled
        assert cancel_pending(u, world.manager, ids["later"], now=at(32)).status == "FAILED"


def test_saved_replies_are_managed_and_rendered(world: World) -> None:
    world.ingest(world.wa, "4922", "in-2", 0, name="Ada Lovelace")
    conv = world.conversation(world.wa, "4922")
    with world.uow() as u:
        hi = create_saved_reply(u, world.manager, code=" Hello ", title="Greeting",
                                body="Hi {first_name}! {agent_name} here. {{braces}} stay.")
    assert hi.code == "hello" and hi.created_by == "Max Manager"
    with world.uow() as u, pytest.raises(InvalidInput, match=r"unknown placeholder \{nmae\}"):
        create_saved_reply(u, world.manager, code="typo", title="Typo", body="Hi {nmae}")
    with world.uow() as u, pytest.raises(InvalidInput, match="braces do not match"):
        create_saved_reply(u, world.manager, code="typo", title="Typo", body="Hi {name")
    with world.uow() as u, pytest.raises(InvalidInput, match="short code"):
        create_saved_reply(u, world.manager, code="no spaces please", title="x", body="x")
    with world.uow() as u, pytest.raises(Conflict, match="already used"):
        create_saved_reply(u, world.manager, code="hello", title="Again", body="Hello")
    with world.uow() as u, pytest.raises(PermissionDenied):
        create_saved_reply(u, world.a1, code="mine", title="Mine", body="x")
    with world.uow() as u:
        assert render_saved_reply(u, world.a1, hi.id, conv) == "Hi Ada! Alice Agent here. {braces} stay."
        assert [r.code for r in list_saved_replies(u, world.a1)] == ["hello"]
        with pytest.raises(PermissionDenied):
            render_saved_reply(u, world.nobody, hi.id, conv)  # no view on the channel
        with pytest.raises(NotFound):
            render_saved_reply(u, world.outsider, hi.id, conv)
    with world.uow() as u:
        changed = update_saved_reply(u, world.manager, hi.id, code="hi", title="Greeting", body="Dear {name},")
    assert changed.code == "hi"
    world.ingest(world.wa, "4933", "in-3", 0)  # a contact without a name
    with world.uow() as u:
        assert render_saved_reply(u, world.a1, hi.id, world.conversation(world.wa, "4933")) == "Dear there,"
        delete_saved_reply(u, world.manager, hi.id)
    with world.uow() as u:
        assert list_saved_replies(u, world.a1) == []
        actions = [a.action for a in list_audit(u, world.admin, action_prefix="saved_reply.")]
        assert actions == ["saved_reply.deleted", "saved_reply.updated", "saved_reply.created"]


def test_the_thread_version_changes_with_every_visible_change(world: World) -> None:
    from switchboard.services.inbox_views import thread_version
    from switchboard.services.outbox import adopt_reported_send

    ids = _replies(world)
    conv = ids["conversation"]

    def version() -> str:
        with world.uow() as u:
            return thread_version(u, world.a1, conv)

    seen = {version()}
    with world.uow() as u:  # the same second as the last status change: still a new version
        u.session.execute(update(Message).where(Message.id == ids["sent"]).values(status="DELIVERED"))
    seen.add(version())
    with world.uow() as u:
        assert adopt_reported_send(u, world.wa, idempotency_key="k-pending", provider_message_id="wamid.p",
                                   sent_at=at(10))
    seen.add(version())
    world.ingest(world.wa, "4911", "in-2", 11)
    seen.add(version())
    assert len(seen) == 4 and version() in seen  # unchanged when nothing changed
    with world.uow() as u, pytest.raises(PermissionDenied):
        thread_version(u, world.nobody, conv)


def test_the_thread_version_of_the_newest_messages_ignores_older_ones_but_not_new_ones(world: World) -> None:
    from switchboard.services.inbox_views import get_thread, thread_version

    conv = _replies(world)["conversation"]
    with world.uow() as u:
        shown = get_thread(u, world.a1, conv, limit=2).items  # what an agent sees of the thread
        everything = get_thread(u, world.a1, conv, limit=200).items
    oldest, newest = everything[0].id, shown[-1].id
    assert oldest not in {m.id for m in shown}

    def version() -> str:
        with world.uow() as u:
            return thread_version(u, world.a1, conv, newest=2)

    before = version()
    with world.uow() as u:  # an edit of a message the agent does not see: no reload
        u.session.execute(update(Message).where(Message.id == oldest).values(is_edited=True))
    assert version() == before
    with world.uow() as u:  # the same edit of one the agent sees: reload
        u.session.execute(update(Message).where(Message.id == newest).values(is_edited=True))
    edited = version()
    assert edited != before
    world.ingest(world.wa, "4911", "in-9", 30)  # a new message: reload
    assert version() != edited
    with world.uow() as u, pytest.raises(InvalidInput, match="newest must be at least 1"):
        thread_version(u, world.a1, conv, newest=0)
