"""Exactly-once sends in the outbox's services: fencing tokens (a stale worker records nothing),
unknown outcomes ("may have been sent": settled by the platform's report or by a manager)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from switchboard.auth.audit import list_audit
from switchboard.db.schema import ConversationEvent, Message
from switchboard.domain.conversation import MessageStatus, can_advance
from switchboard.errors import Conflict, NotFound, PermissionDenied
from switchboard.services.conversations import accept
from switchboard.services.messages import load_message, status_label
from switchboard.services.outbox import (
    adopt_reported_send,
    claim_due,
    enqueue_reply,
    list_unknown,
    mark_unknown_sent,
    record_already_sent_reply,
    record_failure,
    record_sent,
    record_unknown,
    release_claims,
    resend_unknown,
    still_owned,
)
from switchboard.types import Actor

from .conftest import World, at


def _queued(world: World, key: str = "k1") -> int:
    world.ingest(world.wa, "c1", "c1-m1", 0)
    conv = world.conversation(world.wa, "c1")
    with world.uow() as u:
        accept(u, world.a1, conv, now=at(1))
    with world.uow() as u:
        return enqueue_reply(u, world.a1, conv, "hello", idempotency_key=key, now=at(2)).id


def _status(world: World, message_id: int) -> str:
    with world.uow() as u:
        return str(u.session.execute(select(Message.status).where(Message.id == message_id)).scalar_one())


def _events(world: World, message_id: int) -> list[str]:
    with world.uow() as u:
        return list(u.session.execute(select(ConversationEvent.type).where(ConversationEvent.message_id == message_id)
                                      .order_by(ConversationEvent.id)).scalars())


def test_a_worker_whose_lease_ran_out_and_was_reclaimed_records_nothing(world: World) -> None:
    mid = _queued(world)
    with world.uow() as u:
        [old] = claim_due(u, now=at(2), lease_seconds=60)
    with world.uow() as u:
        assert still_owned(u, mid, old.token, at(2) + timedelta(seconds=30))
        assert not still_owned(u, mid, old.token, at(2) + timedelta(seconds=61))  # lease over: do not send
    with world.uow() as u:
        [new] = claim_due(u, now=at(2) + timedelta(seconds=61))
    assert new.message_id == mid and new.token == old.token + 1 and new.attempts == 2
    with world.uow() as u:  # the old worker wakes up: whatever it did, nothing of it is recorded
        assert not still_owned(u, mid, old.token, at(2) + timedelta(seconds=62))
        assert record_sent(u, mid, token=old.token, provider_message_id="wamid.old", sent_at=at(3)) is False
        assert record_failure(u, mid, token=old.token, error_code="x", error_message="boom", retryable=False,
                              now=at(3)) is False
        assert record_unknown(u, mid, token=old.token, error_code="timeout", error_message="?", now=at(3)) is False
        release_claims(u, [(mid, old.token, at(9))])
    with world.uow() as u:
        m = u.session.get(Message, mid)
        assert m is not None and (m.status, m.provider_message_id, m.attempts) == ("PENDING", None, 2)
        assert m.next_attempt_at == at(2) + timedelta(seconds=121)  # the new claim's lease, untouched
    with world.uow() as u:  # the new owner records its result
        assert still_owned(u, mid, new.token, at(2) + timedelta(seconds=62))
        assert record_sent(u, mid, token=new.token, provider_message_id="wamid.new", sent_at=at(3)) is True
    with world.uow() as u:
        assert load_message(u, mid).provider_message_id == "wamid.new"
    assert _events(world, mid) == ["MESSAGE_SENT"]


def test_release_gives_back_only_the_claims_still_owned(world: World) -> None:
    mid = _queued(world)
    with world.uow() as u:
        [job] = claim_due(u, now=at(2))
    with world.uow() as u:
        release_claims(u, [(mid, job.token, at(2.5))])
    with world.uow() as u:
        m = u.session.get(Message, mid)
        assert m is not None and (m.status, m.attempts, m.next_attempt_at) == ("PENDING", 0, at(2.5))


def test_an_unknown_outcome_waits_for_the_platform_report(world: World) -> None:
    mid = _queued(world, "k-unknown")
    with world.uow() as u:
        [job] = claim_due(u, now=at(2))
    with world.uow() as u:
        assert record_unknown(u, mid, token=job.token, error_code="unknown_outcome",
                              error_message="no answer after the request was sent", now=at(2.1))
    with world.uow() as u:
        view = load_message(u, mid)
        assert (view.status, view.status_label, view.error_code) == ("UNKNOWN", "may have been sent",
                                                                      "unknown_outcome")
        assert claim_due(u, now=at(60)) == []  # never retried blindly
        assert [m.id for m in list_unknown(u, world.manager)] == [mid]
    assert _events(world, mid) == ["MESSAGE_UNKNOWN"]
    with world.uow() as u:  # WhatsApp's status webhook echoes our key: it was sent
        assert adopt_reported_send(u, world.wa, idempotency_key="k-unknown", provider_message_id="wamid.late",
                                   sent_at=at(2.2))
    with world.uow() as u:
        view = load_message(u, mid)
        assert (view.status, view.provider_message_id) == ("SENT", "wamid.late")
        assert not adopt_reported_send(u, world.wa, idempotency_key="k-unknown", provider_message_id="wamid.late",
                                       sent_at=at(2.2))
    assert _events(world, mid) == ["MESSAGE_UNKNOWN", "MESSAGE_SENT"]


def test_an_unknown_outcome_the_platform_deduplicates_is_retried(world: World) -> None:
    mid = _queued(world)
    with world.uow() as u:
        [job] = claim_due(u, now=at(2))
    with world.uow() as u:
        record_unknown(u, mid, token=job.token, error_code="UNKNOWN_OUTCOME", error_message="reset",
                       retry_is_safe=True, max_attempts=2, now=at(2))
    assert _status(world, mid) == "PENDING"  # Telegram deduplicates on random_id: a retry is safe
    with world.uow() as u:
        [job] = claim_due(u, now=at(10))
    with world.uow() as u:  # ...but not forever: after the last attempt a person decides
        record_unknown(u, mid, token=job.token, error_code="UNKNOWN_OUTCOME", error_message="reset",
                       retry_is_safe=True, max_attempts=2, now=at(10))
    assert _status(world, mid) == "UNKNOWN"


def _unknown(world: World) -> int:
    mid = _queued(world)
    with world.uow() as u:
        [job] = claim_due(u, now=at(2))
    with world.uow() as u:
        record_unknown(u, mid, token=job.token, error_code="unknown_outcome", error_message="?", now=at(2))
    return mid


def test_a_manager_resends_a_message_that_may_have_been_sent(world: World) -> None:
    mid = _unknown(world)
    for who, error in ((world.a1, PermissionDenied), (world.outsider, NotFound)):
        with world.uow() as u, pytest.raises(error):
            resend_unknown(u, who, mid, now=at(3))
    with world.uow() as u:
        view = resend_unknown(u, world.manager, mid, now=at(3))
        assert (view.status, view.attempts) == ("PENDING", 0)
    with world.uow() as u:
        assert resend_unknown(u, world.manager, mid, now=at(3)).status == "PENDING"  # idempotent
        [job] = claim_due(u, now=at(3))
        assert job.message_id == mid
    with world.uow() as u:
        audit = list_audit(u, world.admin)
    assert [a.action for a in audit if a.target == f"message:{mid}"] == ["message.unknown_resent"]


def test_a_manager_marks_a_message_that_may_have_been_sent_as_sent(world: World) -> None:
    mid = _unknown(world)
    with world.uow() as u, pytest.raises(NotFound):
        mark_unknown_sent(u, world.outsider, mid, now=at(3))
    with world.uow() as u:
        view = mark_unknown_sent(u, world.manager, mid, now=at(3))
        assert (view.status, view.status_label) == ("SENT", "sent")
    with world.uow() as u:
        assert mark_unknown_sent(u, world.manager, mid, now=at(4)).status == "SENT"  # idempotent
        with pytest.raises(Conflict, match="not 'may have been sent'"):
            resend_unknown(u, world.manager, mid, now=at(4))
        assert claim_due(u, now=at(60)) == []
    assert _events(world, mid) == ["MESSAGE_UNKNOWN", "MESSAGE_SENT"]
    with world.uow() as u:
        data = u.session.execute(select(ConversationEvent.data).where(
            ConversationEvent.message_id == mid, ConversationEvent.type == "MESSAGE_SENT")).scalar_one()
    assert data["settled_by"] == "person" and data["settled_by_user_id"] == world.manager.user_id


def test_a_reply_already_sent_is_recorded_sent_without_the_outbox(world: World) -> None:
    world.ingest(world.wa, "c9", "c9-m1", 0)
    conv = world.conversation(world.wa, "c9")
    system = Actor.system(world.org)
    with world.uow() as u:
        view = record_already_sent_reply(u, system, conv, "from history", idempotency_key="imp-1",
                                         provider_message_id="wamid.hist", sent_at=at(1),
                                         author_user_id=world.a1.user_id)
    assert (view.status, view.author_user_id, view.provider_message_id) == ("SENT", world.a1.user_id, "wamid.hist")
    with world.uow() as u:
        again = record_already_sent_reply(u, system, conv, "from history", idempotency_key="imp-1",
                                          provider_message_id="wamid.hist", sent_at=at(1))
        assert again.id == view.id and claim_due(u, now=at(60)) == []
        with pytest.raises(NotFound, match="user"):
            record_already_sent_reply(u, system, conv, "x", idempotency_key="imp-2", provider_message_id="w2",
                                      sent_at=at(1), author_user_id=world.outsider.user_id)
    with world.uow() as u, pytest.raises(PermissionDenied):
        record_already_sent_reply(u, world.a1, conv, "x", idempotency_key="imp-3", provider_message_id="w3",
                                  sent_at=at(1))


def test_unknown_sits_between_pending_and_sent() -> None:
    assert can_advance(MessageStatus.PENDING, MessageStatus.UNKNOWN)
    assert can_advance(MessageStatus.UNKNOWN, MessageStatus.SENT)
    assert can_advance(MessageStatus.UNKNOWN, MessageStatus.DELIVERED)
    assert can_advance(MessageStatus.UNKNOWN, MessageStatus.FAILED)
    assert not can_advance(MessageStatus.SENT, MessageStatus.UNKNOWN)
    assert [status_label(s) for s in MessageStatus] == ["sending", "sent", "delivered", "read", "failed",
                                                         "may have been sent"]
