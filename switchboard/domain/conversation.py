"""Conversation rules, pure: states, who may do what, and what a message does to a conversation.

No database here. Services load the facts, ask these functions, and apply the answer with race-safe
SQL (a conditional ``UPDATE … WHERE status = 'PENDING'`` for accept, row locks for the others); ingest
replays messages through :func:`apply_message`; pages ask :func:`allowed_actions` which buttons to show.

The state machine (SPEC §3)::

    PENDING ──accept / reassign──▶ ASSIGNED ──release──▶ PENDING
       │                               │
       └────────complete (manager)─────┴──complete──▶ COMPLETED ──reopen / customer writes──▶ PENDING
                                                                  (a new cycle)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from switchboard.errors import Conflict, PermissionDenied

PREVIEW_CHARS = 200  # the column holds 200 characters


class ConversationStatus(StrEnum):
    PENDING = "PENDING"
    ASSIGNED = "ASSIGNED"
    COMPLETED = "COMPLETED"


class Direction(StrEnum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class AuthorKind(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"
    SYSTEM = "system"


def outbound_author(acting_user_id: int | None) -> AuthorKind:
    """Who wrote an outbound message: a person (AGENT: it answers a customer's turn, and may use
    Messenger's HUMAN_AGENT tag) or, with no person acting — an API key, a flow's system actor — a BOT
    (never a human response in the metrics, only the 24-hour window)."""
    return AuthorKind.AGENT if acting_user_id is not None else AuthorKind.BOT


class MessageStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"  # the send may have reached the platform (a timeout after the request): never retried
    # blindly; settled by the platform's report (SENT...) or by a person (resend / mark as sent)


class EventType(StrEnum):
    CREATED = "CREATED"
    ACCEPTED = "ACCEPTED"
    RELEASED = "RELEASED"
    REASSIGNED = "REASSIGNED"
    COMPLETED = "COMPLETED"
    REOPENED = "REOPENED"
    AGENT_DISCONNECTED = "AGENT_DISCONNECTED"
    MESSAGE_RECEIVED = "MESSAGE_RECEIVED"
    MESSAGE_SENT = "MESSAGE_SENT"
    MESSAGE_DELIVERED = "MESSAGE_DELIVERED"
    MESSAGE_READ = "MESSAGE_READ"
    MESSAGE_FAILED = "MESSAGE_FAILED"
    MESSAGE_UNKNOWN = "MESSAGE_UNKNOWN"  # a send's outcome is unknown ("may have been sent")
    MESSAGE_ERASED = "MESSAGE_ERASED"  # the message's content was erased (a privacy request)


class ConversationAction(StrEnum):
    ACCEPT = "accept"
    RELEASE = "release"
    COMPLETE = "complete"
    REOPEN = "reopen"
    REASSIGN = "reassign"
    REPLY = "reply"


# --- who may do what ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Participant:
    """The acting person as far as one conversation is concerned (the policy has verified it)."""

    user_id: int | None
    is_manager: bool
    can_send: bool  # on the conversation's channel


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules need to know about a conversation."""

    conversation_id: int
    status: ConversationStatus
    assigned_user_id: int | None
    assignee_name: str = "another agent"
    channel_key: str | None = None  # named in refusals about the channel's permissions


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an action is not allowed now; ``conflict``: the conversation's state is in the way (Conflict),
    otherwise the person lacks the right (PermissionDenied)."""

    reason: str
    conflict: bool = False


def _no_send(c: Facts) -> str:
    return "you have no 'send' permission on " + (f"channel '{c.channel_key}'" if c.channel_key else "this channel")


def _refusal(action: ConversationAction, who: Participant, c: Facts) -> Refusal | None:
    """Why ``who`` may not do ``action`` on ``c`` now, or None when allowed. The sentences are for people."""
    cid = c.conversation_id
    mine = c.assigned_user_id is not None and c.assigned_user_id == who.user_id
    assigned, completed = c.status is ConversationStatus.ASSIGNED, c.status is ConversationStatus.COMPLETED
    if action is ConversationAction.ACCEPT:
        if who.user_id is None:
            return Refusal("only a person can hold a conversation; reassign it to one")
        if not who.can_send:  # taking a conversation means answering it
            return Refusal(_no_send(c) + ", so you cannot accept its conversations")
        if assigned and not mine:
            return Refusal(f"conversation {cid} was already accepted by {c.assignee_name}", conflict=True)
        if completed:
            return Refusal(f"conversation {cid} is completed; reopen it before accepting it", conflict=True)
        return None
    if action is ConversationAction.RELEASE:
        if completed:
            return Refusal(f"conversation {cid} is completed; there is nothing to release", conflict=True)
        if assigned and not (mine or who.is_manager):
            return Refusal(f"conversation {cid} is assigned to {c.assignee_name}; only the assignee or a "
                           "manager may release it")
        return None
    if action is ConversationAction.COMPLETE:
        if c.status is ConversationStatus.PENDING and not who.is_manager:
            return Refusal(f"conversation {cid} is not assigned to you; accept it before completing it")
        if assigned and not (mine or who.is_manager):
            return Refusal(f"conversation {cid} is assigned to {c.assignee_name}; only the assignee or a "
                           "manager may complete it")
        return None
    if action is ConversationAction.REOPEN:
        return None  # anyone who may view the channel; a no-op unless COMPLETED
    if action is ConversationAction.REASSIGN:
        if not who.is_manager:
            return Refusal("only admins and managers may reassign conversations")
        if completed:
            return Refusal(f"conversation {cid} is completed; reopen it before reassigning it", conflict=True)
        return None
    if action is ConversationAction.REPLY:
        if not who.can_send:
            return Refusal(_no_send(c))
        if completed and not who.is_manager:
            return Refusal(f"conversation {cid} is completed; reopen and accept it before replying",
                           conflict=True)
        if not who.is_manager and not (assigned and mine):
            holder = "nobody" if c.assigned_user_id is None else "another agent"
            return Refusal(f"conversation {cid} is assigned to {holder}; accept it before replying "
                           "(only the assignee or a manager may reply)")
        return None
    raise AssertionError(action)


_IDLE: dict[ConversationAction, frozenset[ConversationStatus]] = {
    # actions that would change nothing in these states are not offered as buttons
    ConversationAction.ACCEPT: frozenset({ConversationStatus.ASSIGNED, ConversationStatus.COMPLETED}),
    ConversationAction.RELEASE: frozenset({ConversationStatus.PENDING, ConversationStatus.COMPLETED}),
    ConversationAction.COMPLETE: frozenset({ConversationStatus.COMPLETED}),
    ConversationAction.REOPEN: frozenset({ConversationStatus.PENDING, ConversationStatus.ASSIGNED}),
    ConversationAction.REASSIGN: frozenset({ConversationStatus.COMPLETED}),
    ConversationAction.REPLY: frozenset(),
}


def allowed_actions(who: Participant, c: Facts) -> frozenset[ConversationAction]:
    """The actions worth offering ``who`` on ``c`` now: allowed and not a no-op (the inbox's buttons)."""
    return frozenset(a for a in ConversationAction
                     if c.status not in _IDLE[a] and _refusal(a, who, c) is None)


def check(action: ConversationAction, who: Participant, c: Facts) -> None:
    """Raise PermissionDenied / Conflict with a sentence when ``action`` is not allowed now."""
    found = _refusal(action, who, c)
    if found is not None:
        raise (Conflict if found.conflict else PermissionDenied)(found.reason)


def is_noop(action: ConversationAction, who: Participant, c: Facts) -> bool:
    """Repeating a transition that already happened changes nothing and writes no event (idempotence)."""
    mine = c.assigned_user_id is not None and c.assigned_user_id == who.user_id
    if action is ConversationAction.ACCEPT:
        return c.status is ConversationStatus.ASSIGNED and mine
    if action is ConversationAction.RELEASE:
        return c.status is ConversationStatus.PENDING
    if action is ConversationAction.COMPLETE:
        return c.status is ConversationStatus.COMPLETED
    if action is ConversationAction.REOPEN:
        return c.status is not ConversationStatus.COMPLETED
    return False


# --- what a message does to a conversation ---------------------------------------------------------

@dataclass(slots=True)
class ConversationState:
    """The denormalised columns of a conversation that messages change (mutable: replayed in place)."""

    status: ConversationStatus
    assigned_user_id: int | None
    unread_count: int
    last_message_preview: str | None
    last_message_at: datetime | None
    last_inbound_at: datetime | None
    cycle_number: int
    cycle_started_at: datetime | None
    first_response_at: datetime | None
    awaiting_reply: bool
    reopened: int = 0


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event a rule produced; the service adds organization, conversation and message ids."""

    type: EventType
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


def preview_of(body: str | None, content_type: str) -> str:
    """The one-line preview of a message shown in conversation lists."""
    if body and body.strip():
        return " ".join(body.split())[:PREVIEW_CHARS]
    return f"[{content_type}]"[:PREVIEW_CHARS]


def new_conversation(first_at: datetime, first_inbound_at: datetime | None) -> ConversationState:
    """A conversation as it is created, before any of its messages is applied."""
    return ConversationState(ConversationStatus.PENDING, None, 0, None, first_at, None, 1, first_inbound_at,
                             None, False)


def apply_message(conv: ConversationState, *, direction: Direction | str, author_kind: AuthorKind | str,
                  at: datetime, body: str | None, content_type: str) -> list[EventSpec]:
    """Apply one message (in time order) to ``conv``; returns the events it causes.

    * A customer message on a COMPLETED conversation reopens it: PENDING, unassigned, a new cycle whose
      first response is still to come.
    * A customer message counts as unread and makes the conversation await a reply.
    * An agent message at or after the latest customer message answers it; the first one in a cycle is
      the cycle's first response. Bot and system messages answer nothing.
    """
    events: list[EventSpec] = []
    if direction == Direction.INBOUND:
        if conv.status is ConversationStatus.COMPLETED:
            conv.status = ConversationStatus.PENDING
            conv.assigned_user_id = None
            conv.cycle_number += 1
            conv.cycle_started_at = at
            conv.first_response_at = None
            conv.reopened += 1
            events.append(EventSpec(EventType.REOPENED, at, {"cycle": conv.cycle_number, "by": "customer"}))
        if conv.cycle_started_at is None:
            conv.cycle_started_at = at
        events.append(EventSpec(EventType.MESSAGE_RECEIVED, at, {"cycle": conv.cycle_number}))
        conv.unread_count += 1
        if conv.last_inbound_at is None or at >= conv.last_inbound_at:
            conv.last_inbound_at = at
            conv.awaiting_reply = True
    else:
        events.append(EventSpec(EventType.MESSAGE_SENT, at,
                                {"author_kind": str(author_kind), "echo": True, "cycle": conv.cycle_number}))
        if author_kind == AuthorKind.AGENT and (conv.last_inbound_at is None or at >= conv.last_inbound_at):
            conv.awaiting_reply = False
            if conv.first_response_at is None and conv.cycle_started_at is not None \
                    and at >= conv.cycle_started_at:
                conv.first_response_at = at
    if conv.last_message_at is None or at >= conv.last_message_at or conv.last_message_preview is None:
        conv.last_message_at = max(at, conv.last_message_at or at)
        conv.last_message_preview = preview_of(body, content_type)
    return events


def reopen(conv: ConversationState, at: datetime) -> list[EventSpec]:
    """An agent reopens a COMPLETED conversation: a new cycle, PENDING (no-op otherwise)."""
    if conv.status is not ConversationStatus.COMPLETED:
        return []
    conv.status = ConversationStatus.PENDING
    conv.assigned_user_id = None
    conv.cycle_number += 1
    conv.cycle_started_at = at
    conv.first_response_at = None
    return [EventSpec(EventType.REOPENED, at, {"cycle": conv.cycle_number, "by": "agent"})]


# --- message delivery status -----------------------------------------------------------------------

STATUS_RANK: dict[str, int] = {MessageStatus.PENDING: 0, MessageStatus.UNKNOWN: 1, MessageStatus.SENT: 2,
                               MessageStatus.DELIVERED: 3, MessageStatus.READ: 4}


def can_advance(current: str, new: str) -> bool:
    """A message's status only moves forward; FAILED is terminal; a late DELIVERED after READ is ignored.
    UNKNOWN (may have been sent) sits between PENDING and SENT: the platform's report of the message
    (sent, delivered, read or failed) settles it."""
    if current == MessageStatus.FAILED:
        return False
    if new == MessageStatus.FAILED:
        return current != MessageStatus.READ
    return STATUS_RANK.get(new, -1) > STATUS_RANK.get(current, 99)
