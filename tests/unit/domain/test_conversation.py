"""The conversation rules without a database: every action from every state, by every kind of person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from switchboard.domain.conversation import (
    PREVIEW_CHARS,
    AuthorKind,
    ConversationAction,
    ConversationState,
    ConversationStatus,
    Direction,
    EventType,
    Facts,
    Participant,
    allowed_actions,
    apply_message,
    check,
    is_noop,
    new_conversation,
    preview_of,
    reopen,
)
from switchboard.errors import Conflict, PermissionDenied

A = ConversationAction
S = ConversationStatus
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ALICE = 1  # the agent who holds the conversation when it is ASSIGNED

PEOPLE = {
    "assignee": Participant(ALICE, is_manager=False, can_send=True),
    "other agent": Participant(2, is_manager=False, can_send=True),
    "viewer": Participant(3, is_manager=False, can_send=False),  # may view the channel, not send
    "manager": Participant(9, is_manager=True, can_send=True),
}


def facts(status: S) -> Facts:
    return Facts(42, status, ALICE if status is S.ASSIGNED else None,
                 "Alice Agent" if status is S.ASSIGNED else "nobody", "wa-main")


def outcome(action: A, who: Participant, c: Facts) -> str:
    """What a service does: a no-op, the transition, or a refusal of one of two kinds."""
    if is_noop(action, who, c):
        return "noop"
    try:
        check(action, who, c)
    except Conflict:
        return "conflict"
    except PermissionDenied:
        return "denied"
    return "ok"


# (action, status) -> outcome for assignee, other agent, viewer, manager
TABLE: dict[tuple[A, S], tuple[str, str, str, str]] = {
    (A.ACCEPT, S.PENDING): ("ok", "ok", "denied", "ok"),
    (A.ACCEPT, S.ASSIGNED): ("noop", "conflict", "denied", "conflict"),
    (A.ACCEPT, S.COMPLETED): ("conflict", "conflict", "denied", "conflict"),
    (A.RELEASE, S.PENDING): ("noop", "noop", "noop", "noop"),
    (A.RELEASE, S.ASSIGNED): ("ok", "denied", "denied", "ok"),
    (A.RELEASE, S.COMPLETED): ("conflict", "conflict", "conflict", "conflict"),
    (A.COMPLETE, S.PENDING): ("denied", "denied", "denied", "ok"),
    (A.COMPLETE, S.ASSIGNED): ("ok", "denied", "denied", "ok"),
    (A.COMPLETE, S.COMPLETED): ("noop", "noop", "noop", "noop"),
    (A.REOPEN, S.PENDING): ("noop", "noop", "noop", "noop"),
    (A.REOPEN, S.ASSIGNED): ("noop", "noop", "noop", "noop"),
    (A.REOPEN, S.COMPLETED): ("ok", "ok", "ok", "ok"),
    (A.REASSIGN, S.PENDING): ("denied", "denied", "denied", "ok"),
    (A.REASSIGN, S.ASSIGNED): ("denied", "denied", "denied", "ok"),
    (A.REASSIGN, S.COMPLETED): ("denied", "denied", "denied", "conflict"),
    (A.REPLY, S.PENDING): ("denied", "denied", "denied", "ok"),
    (A.REPLY, S.ASSIGNED): ("ok", "denied", "denied", "ok"),
    (A.REPLY, S.COMPLETED): ("conflict", "conflict", "denied", "ok"),
}


def test_the_table_covers_every_action_in_every_state() -> None:
    assert set(TABLE) == {(a, s) for a in A for s in S}


@pytest.mark.parametrize(("action", "status"), sorted(TABLE, key=str))
def test_who_may_do_what(action: A, status: S) -> None:
    got = tuple(outcome(action, who, facts(status)) for who in PEOPLE.values())
    assert got == TABLE[(action, status)], dict(zip(PEOPLE, got, strict=True))


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("person", list(PEOPLE))
def test_buttons_are_exactly_the_actions_that_would_do_something(status: S, person: str) -> None:
    who = PEOPLE[person]
    expected = {a for a in A if outcome(a, who, facts(status)) == "ok"}
    assert allowed_actions(who, facts(status)) == expected


def test_refusals_are_sentences_naming_the_holder_and_the_channel() -> None:
    other, viewer = PEOPLE["other agent"], PEOPLE["viewer"]
    with pytest.raises(Conflict, match="^conversation 42 was already accepted by Alice Agent$"):
        check(A.ACCEPT, other, facts(S.ASSIGNED))
    with pytest.raises(PermissionDenied, match="no 'send' permission on channel 'wa-main', so you cannot accept"):
        check(A.ACCEPT, viewer, facts(S.PENDING))
    with pytest.raises(PermissionDenied, match="assigned to Alice Agent; only the assignee or a manager may release"):
        check(A.RELEASE, other, facts(S.ASSIGNED))
    with pytest.raises(PermissionDenied, match="assigned to nobody; accept it before replying"):
        check(A.REPLY, other, facts(S.PENDING))
    with pytest.raises(PermissionDenied, match="assigned to another agent; accept it before replying"):
        check(A.REPLY, other, facts(S.ASSIGNED))
    with pytest.raises(Conflict, match="is completed; reopen it before reassigning it"):
        check(A.REASSIGN, PEOPLE["manager"], facts(S.COMPLETED))
    anonymous = Facts(7, S.PENDING, None)  # no channel key known: the sentence still reads
    with pytest.raises(PermissionDenied, match="on this channel"):
        check(A.REPLY, viewer, anonymous)


def test_repeating_a_transition_is_a_noop() -> None:
    assignee = PEOPLE["assignee"]
    assert is_noop(A.ACCEPT, assignee, facts(S.ASSIGNED))
    assert not is_noop(A.ACCEPT, PEOPLE["other agent"], facts(S.ASSIGNED))
    assert is_noop(A.RELEASE, assignee, facts(S.PENDING))
    assert is_noop(A.COMPLETE, assignee, facts(S.COMPLETED))
    assert is_noop(A.REOPEN, assignee, facts(S.ASSIGNED))
    assert not is_noop(A.REPLY, assignee, facts(S.ASSIGNED))  # each reply is a new message


def test_the_system_actor_is_a_manager_without_a_user() -> None:
    system = Participant(None, is_manager=True, can_send=True)
    assert outcome(A.COMPLETE, system, facts(S.ASSIGNED)) == "ok"
    assert outcome(A.ACCEPT, system, facts(S.PENDING)) == "denied"  # it never holds a conversation
    assert A.ACCEPT not in allowed_actions(system, facts(S.PENDING))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def customer(conv: ConversationState, minutes: float, body: str | None = "hi") -> list[EventType]:
    return [e.type for e in apply_message(conv, direction=Direction.INBOUND, author_kind=AuthorKind.CUSTOMER,
                                          at=at(minutes), body=body, content_type="text")]


def agent(conv: ConversationState, minutes: float, kind: AuthorKind = AuthorKind.AGENT) -> list[EventType]:
    return [e.type for e in apply_message(conv, direction=Direction.OUTBOUND, author_kind=kind, at=at(minutes),
                                          body="answer", content_type="text")]


def test_a_customer_message_waits_for_an_answer_and_the_first_agent_answer_is_the_first_response() -> None:
    conv = new_conversation(at(0), at(0))
    assert customer(conv, 0) == [EventType.MESSAGE_RECEIVED]
    assert (conv.unread_count, conv.awaiting_reply, conv.cycle_number) == (1, True, 1)
    assert agent(conv, 1, AuthorKind.BOT) == [EventType.MESSAGE_SENT]
    assert conv.awaiting_reply and conv.first_response_at is None  # a bot answers nothing
    agent(conv, 2)
    assert not conv.awaiting_reply and conv.first_response_at == at(2)
    agent(conv, 3)
    assert conv.first_response_at == at(2)  # only the first one counts
    assert conv.last_message_preview == "answer" and conv.last_message_at == at(3)


def test_an_agent_message_older_than_the_customer_message_does_not_answer_it() -> None:
    conv = new_conversation(at(0), at(5))
    customer(conv, 5)
    agent(conv, 4)  # replayed out of order: written before the customer's message
    assert conv.awaiting_reply and conv.first_response_at is None
    assert conv.last_message_at == at(5)


def test_a_customer_writing_to_a_completed_conversation_reopens_it_in_a_new_cycle() -> None:
    conv = new_conversation(at(0), at(0))
    customer(conv, 0)
    agent(conv, 1)
    conv.status, conv.assigned_user_id = S.COMPLETED, None
    assert customer(conv, 10) == [EventType.REOPENED, EventType.MESSAGE_RECEIVED]
    assert (conv.status, conv.cycle_number, conv.cycle_started_at, conv.first_response_at, conv.reopened) == (
        S.PENDING, 2, at(10), None, 1)
    agent(conv, 12)
    assert conv.first_response_at == at(12)
    assert customer(conv, 13) == [EventType.MESSAGE_RECEIVED]  # open: no new cycle


def test_reopen_by_an_agent_starts_a_new_cycle_only_when_completed() -> None:
    conv = new_conversation(at(0), at(0))
    assert reopen(conv, at(1)) == []
    conv.status, conv.first_response_at = S.COMPLETED, at(0.5)
    [event] = reopen(conv, at(2))
    assert (event.type, event.data) == (EventType.REOPENED, {"cycle": 2, "by": "agent"})
    assert (conv.status, conv.assigned_user_id, conv.cycle_started_at, conv.first_response_at) == (
        S.PENDING, None, at(2), None)


def test_previews_are_one_line_and_media_is_named() -> None:
    assert preview_of("  hello\n\n world ", "text") == "hello world"
    assert preview_of(None, "image") == "[image]"
    assert len(preview_of("x" * 500, "text")) == PREVIEW_CHARS == 200  # what the column holds


def test_statuses_compare_equal_to_the_stored_strings() -> None:
    assert S.PENDING == "PENDING" and Direction.INBOUND == "INBOUND" and AuthorKind.AGENT == "agent"
