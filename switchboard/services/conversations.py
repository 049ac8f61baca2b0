"""Conversation lifecycle: accept, release, complete, reassign, reopen, mark read.

Who may do what, and what a transition changes, is decided by :mod:`switchboard.domain.conversation`
(pure rules); this module loads the facts and applies the answer. Each transition is a conditional
UPDATE (``… WHERE status = 'PENDING'`` for accept) or runs under the row lock (``FOR UPDATE``), writes its
conversation event with actor and time, and is idempotent: repeating a transition that already happened
returns the current view without a second event. Nothing here commits: the entrypoint does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import aliased

from switchboard.clock import utcnow
from switchboard.db.schema import Channel, Contact, Conversation, User
from switchboard.domain import conversation as rules
from switchboard.domain.conversation import (
    ConversationAction,
    ConversationState,
    ConversationStatus,
    EventType,
    Facts,
    Participant,
    allowed_actions,
    check,
    is_noop,
)
from switchboard.errors import Conflict, InvalidInput, NotFound
from switchboard.policy import Action, ChannelAccess, channel_access, require, require_view
from switchboard.services.events import append_event
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class ConversationView:
    id: int
    organization_id: int
    channel_id: int
    channel_key: str
    channel_name: str
    provider: str
    contact_id: int
    contact_name: str
    contact_handle: str
    status: str
    assigned_user_id: int | None
    assigned_user_name: str | None
    unread_count: int
    last_message_preview: str | None
    last_message_at: datetime | None
    created_at: datetime
    cycle_number: int
    awaiting_reply: bool
    last_inbound_at: datetime | None = None
    first_response_at: datetime | None = None
    cycle_started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConversationRow:
    """The few columns a transition needs, plus the caller's verified access to its channel."""

    id: int
    organization_id: int
    channel_id: int
    contact_id: int
    status: ConversationStatus
    assigned_user_id: int | None
    assignee_name: str | None
    cycle_number: int
    access: ChannelAccess

    @property
    def facts(self) -> Facts:
        """What the conversation rules need (:mod:`switchboard.domain.conversation`)."""
        return Facts(self.id, self.status, self.assigned_user_id, self.assignee_name or "nobody",
                     self.access.channel_key)

    @property
    def participant(self) -> Participant:
        """The caller as the conversation rules see it (from the policy's channel access)."""
        return participant(self.access)


def participant(access: ChannelAccess) -> Participant:
    return Participant(access.actor.acting_user_id, access.actor.is_manager, access.can_send)


Assignee = aliased(User, name="assignee")


def view_select() -> Select[Any]:
    return (
        select(
            Conversation.id, Conversation.organization_id, Conversation.channel_id,
            Channel.key.label("channel_key"), Channel.name.label("channel_name"), Channel.provider,
            Conversation.contact_id, Contact.display_name, Contact.username, Contact.phone,
            Contact.provider_contact_id, Conversation.status, Conversation.assigned_user_id,
            Assignee.name.label("assignee_name"), Conversation.unread_count,
            Conversation.last_message_preview, Conversation.last_message_at, Conversation.created_at,
            Conversation.cycle_number, Conversation.awaiting_reply, Conversation.last_inbound_at,
            Conversation.first_response_at, Conversation.cycle_started_at,
        )
        .select_from(Conversation)
        .join(Channel, Channel.id == Conversation.channel_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(Assignee, Assignee.id == Conversation.assigned_user_id)
    )


def contact_label(display_name: str | None, username: str | None, phone: str | None, pcid: str) -> str:
    return display_name or (f"@{username}" if username else None) or phone or pcid


def contact_handle(username: str | None, phone: str | None, pcid: str) -> str:
    return f"@{username}" if username else (phone or pcid)


def row_to_view(r: Any) -> ConversationView:
    return ConversationView(
        r.id, r.organization_id, r.channel_id, r.channel_key, r.channel_name, r.provider, r.contact_id,
        contact_label(r.display_name, r.username, r.phone, r.provider_contact_id),
        contact_handle(r.username, r.phone, r.provider_contact_id),
        r.status, r.assigned_user_id, r.assignee_name, r.unread_count, r.last_message_preview,
        r.last_message_at, r.created_at, r.cycle_number, r.awaiting_reply, r.last_inbound_at,
        r.first_response_at, r.cycle_started_at,
    )


def load_view(uow: UnitOfWork, conversation_id: int) -> ConversationView:
    """The view of one conversation, without access checks (callers check first)."""
    r = uow.session.execute(view_select().where(Conversation.id == conversation_id)).first()
    if r is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return row_to_view(r)


def load_conversation(uow: UnitOfWork, actor: Actor, conversation_id: int, *, lock: bool = False
                      ) -> ConversationRow:
    """Load a conversation the actor may view (NotFound across organizations), optionally locked."""
    stmt = (select(Conversation.id, Conversation.organization_id, Conversation.channel_id,
                   Conversation.contact_id, Conversation.status, Conversation.assigned_user_id,
                   Assignee.name.label("assignee_name"), Conversation.cycle_number)
            .outerjoin(Assignee, Assignee.id == Conversation.assigned_user_id)
            .where(Conversation.id == conversation_id))
    if lock:
        stmt = stmt.with_for_update(of=Conversation)
    r = uow.session.execute(stmt).first()
    if r is None or r.organization_id != actor.organization_id:
        raise NotFound(f"conversation {conversation_id} not found")
    acc = require_view(uow, actor, r.channel_id)
    return ConversationRow(r.id, r.organization_id, r.channel_id, r.contact_id, ConversationStatus(r.status),
                           r.assigned_user_id, r.assignee_name, r.cycle_number, acc)


def _auto_assign(uow: UnitOfWork, organization_id: int, now: datetime) -> None:
    """A conversation went back to the queue: hand it on at once when the organization auto-assigns."""
    from switchboard.services.assignment import assign_pending

    assign_pending(uow, organization_id, now=now)


def _transition(uow: UnitOfWork, actor: Actor, conversation_id: int, action: ConversationAction
                ) -> ConversationRow | None:
    """Lock the conversation and ask the rules: None when ``action`` already happened (no event)."""
    conv = load_conversation(uow, actor, conversation_id, lock=True)
    if is_noop(action, conv.participant, conv.facts):
        return None
    check(action, conv.participant, conv.facts)
    return conv


def _event(uow: UnitOfWork, conv: ConversationRow, type: EventType, now: datetime, data: dict[str, Any]) -> None:
    append_event(uow, organization_id=conv.organization_id, conversation_id=conv.id, type=type,
                 occurred_at=now, actor_user_id=conv.access.actor.acting_user_id, data=data)


def _apply(uow: UnitOfWork, conv: ConversationRow, now: datetime, event: EventType, data: dict[str, Any],
           **values: Any) -> None:
    """Write one transition: the conversation's new columns and its event (with the cycle it belongs to);
    a conversation that left the hands of its agent may go to the next one at once."""
    uow.session.execute(update(Conversation).where(Conversation.id == conv.id).values(updated_at=now, **values))
    _event(uow, conv, event, now, {**data, "cycle": values.get("cycle_number", conv.cycle_number)})
    if values["status"] is not ConversationStatus.ASSIGNED:
        _auto_assign(uow, conv.organization_id, now)


# --- transitions: each returns the conversation's view; repeating one that happened is a no-op

def accept(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None
           ) -> ConversationView:
    """PENDING → ASSIGNED to the actor; exactly one winner; the loser gets Conflict naming the winner."""
    now = now or utcnow()
    conv = load_conversation(uow, actor, conversation_id)
    who = conv.participant
    if not is_noop(ConversationAction.ACCEPT, who, conv.facts):
        check(ConversationAction.ACCEPT, who, conv.facts)
        won = uow.session.execute(  # race-safe: only one UPDATE finds the conversation still PENDING
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.status == ConversationStatus.PENDING)
            .values(status=ConversationStatus.ASSIGNED, assigned_user_id=who.user_id, updated_at=now)
            .returning(Conversation.cycle_number)
        ).first()
        if won is None:  # someone else moved it first: tell why with the state they left
            now_facts = load_conversation(uow, actor, conversation_id).facts
            if not is_noop(ConversationAction.ACCEPT, who, now_facts):
                check(ConversationAction.ACCEPT, who, now_facts)
                raise Conflict(f"conversation {conversation_id} changed while you accepted it; try again")
        else:
            _event(uow, conv, EventType.ACCEPTED, now, {"cycle": won.cycle_number})
            uow.session.execute(update(User).where(User.id == who.user_id).values(last_assigned_at=now))
    return load_view(uow, conversation_id)


def release(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None
            ) -> ConversationView:
    """ASSIGNED → PENDING (RELEASED); only the assignee or a manager."""
    now = now or utcnow()
    conv = _transition(uow, actor, conversation_id, ConversationAction.RELEASE)
    if conv is not None:
        _apply(uow, conv, now, EventType.RELEASED, {"from_user_id": conv.assigned_user_id},
               status=ConversationStatus.PENDING, assigned_user_id=None)
    return load_view(uow, conversation_id)


def complete(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None
             ) -> ConversationView:
    """→ COMPLETED; the assignee, or a manager (also from PENDING)."""
    now = now or utcnow()
    conv = _transition(uow, actor, conversation_id, ConversationAction.COMPLETE)
    if conv is not None:
        _apply(uow, conv, now, EventType.COMPLETED, {"assigned_user_id": conv.assigned_user_id},
               status=ConversationStatus.COMPLETED, assigned_user_id=None, awaiting_reply=False)
    return load_view(uow, conversation_id)


def reassign(uow: UnitOfWork, actor: Actor, conversation_id: int, to_user_id: int,
             now: datetime | None = None) -> ConversationView:
    """Manager only: assign to an active user of the organization who may view the channel."""
    now = now or utcnow()
    me = require(uow, actor, Action.ASSIGN)
    conv = load_conversation(uow, me, conversation_id, lock=True)
    target = uow.session.execute(
        select(User.id, User.organization_id, User.role, User.email, User.name, User.status)
        .where(User.id == to_user_id)
    ).first()
    if target is None or target.organization_id != me.organization_id:
        raise NotFound(f"user {to_user_id} not found in your organization")
    if target.status != "active":
        raise InvalidInput(f"{target.name} is {target.status} and cannot take conversations")
    acc = channel_access(uow, Actor(target.id, target.organization_id, target.role, target.email),
                         conv.channel_id)
    if not acc.can_view:
        raise InvalidInput(f"{target.name} may not view channel '{acc.channel_key}'; grant 'view' first")
    check(ConversationAction.REASSIGN, conv.participant, conv.facts)
    if conv.status is not ConversationStatus.ASSIGNED or conv.assigned_user_id != to_user_id:
        _apply(uow, conv, now, EventType.REASSIGNED, {"from_user_id": conv.assigned_user_id, "to_user_id": to_user_id},
               status=ConversationStatus.ASSIGNED, assigned_user_id=to_user_id)
        uow.session.execute(update(User).where(User.id == to_user_id).values(last_assigned_at=now))
    return load_view(uow, conversation_id)


def reopen(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None
           ) -> ConversationView:
    """COMPLETED → PENDING with a new cycle (REOPENED); anyone who may view the channel."""
    now = now or utcnow()
    conv = _transition(uow, actor, conversation_id, ConversationAction.REOPEN)
    if conv is not None:
        _reopen(uow, conv, now, None)
    return load_view(uow, conversation_id)


def _reopen(uow: UnitOfWork, conv: ConversationRow, now: datetime, assignee: int | None) -> int:
    """Apply the rules' reopening (a new cycle, REOPENED); straight to ``assignee`` when given (no queue
    in between). Returns the new cycle number."""
    state = ConversationState(conv.status, conv.assigned_user_id, 0, None, None, None, conv.cycle_number,
                              None, None, False)
    [spec] = rules.reopen(state, now)
    status = state.status if assignee is None else ConversationStatus.ASSIGNED
    _apply(uow, conv, now, spec.type, spec.data, status=status, assigned_user_id=assignee,
           cycle_number=state.cycle_number, cycle_started_at=state.cycle_started_at,
           first_response_at=state.first_response_at)
    return state.cycle_number


def take_up(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None
            ) -> ConversationView:
    """The actor starts writing to this customer (New message): a completed conversation is reopened (a
    new cycle) and goes straight to the actor, a pending one is accepted, an assigned one stays as it is
    (replying to it is then up to the reply rule). The system actor holds nothing: it only reopens."""
    now = now or utcnow()
    conv = load_conversation(uow, actor, conversation_id, lock=True)
    who = conv.participant
    if conv.status is ConversationStatus.COMPLETED:
        if who.user_id is None:
            _reopen(uow, conv, now, None)
            return load_view(uow, conversation_id)
        check(ConversationAction.ACCEPT, who, Facts(conv.id, ConversationStatus.PENDING, None,
                                                    channel_key=conv.access.channel_key))
        cycle = _reopen(uow, conv, now, who.user_id)
        _event(uow, conv, EventType.ACCEPTED, now, {"cycle": cycle})
        uow.session.execute(update(User).where(User.id == who.user_id).values(last_assigned_at=now))
        return load_view(uow, conversation_id)
    if conv.status is ConversationStatus.PENDING and who.user_id is not None:
        return accept(uow, actor, conversation_id, now)
    return load_view(uow, conversation_id)


def mark_read(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None) -> None:
    """unread_count = 0 (no event: reading is not a state change of the conversation)."""
    load_conversation(uow, actor, conversation_id)
    uow.session.execute(update(Conversation)
                        .where(Conversation.id == conversation_id, Conversation.unread_count != 0)
                        .values(unread_count=0))


def available_actions(uow: UnitOfWork, actor: Actor, conversation_id: int) -> frozenset[ConversationAction]:
    """What the actor may do on the conversation now (the inbox's buttons), as the rules decide."""
    conv = load_conversation(uow, actor, conversation_id)
    return allowed_actions(conv.participant, conv.facts)


def open_assigned_count(uow: UnitOfWork, user_id: int) -> int:
    return int(uow.session.execute(
        select(func.count()).where(Conversation.assigned_user_id == user_id,
                                   Conversation.status == ConversationStatus.ASSIGNED)).scalar_one())
