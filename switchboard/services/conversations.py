"""Conversation lifecycle: accept, release, complete, reassign, reopen, mark read.

Each transition is a conditional UPDATE (``… WHERE status = 'PENDING'`` for accept) or runs under the
row lock (``FOR UPDATE``), writes its conversation event with actor and time, and is idempotent:
repeating a transition that already happened returns the current view without a second event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import aliased

from switchboard.clock import utcnow
from switchboard.db.schema import Channel, Contact, Conversation, Organization, User
from switchboard.errors import Conflict, InvalidInput, NotFound, PermissionDenied
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
    status: str
    assigned_user_id: int | None
    cycle_number: int
    access: ChannelAccess


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
    stmt = select(Conversation.id, Conversation.organization_id, Conversation.channel_id,
                  Conversation.contact_id, Conversation.status, Conversation.assigned_user_id,
                  Conversation.cycle_number).where(Conversation.id == conversation_id)
    if lock:
        stmt = stmt.with_for_update()
    r = uow.session.execute(stmt).first()
    if r is None or r.organization_id != actor.organization_id:
        raise NotFound(f"conversation {conversation_id} not found")
    acc = require_view(uow, actor, r.channel_id)
    return ConversationRow(r.id, r.organization_id, r.channel_id, r.contact_id, r.status,
                           r.assigned_user_id, r.cycle_number, acc)


def _user_name(uow: UnitOfWork, user_id: int | None) -> str:
    if user_id is None:
        return "nobody"
    name = uow.session.execute(select(User.name).where(User.id == user_id)).scalar()
    return str(name) if name else f"user {user_id}"


def _drain(uow: UnitOfWork, organization_id: int, now: datetime) -> None:
    from switchboard.services.assignment import assign_pending

    assign_pending(uow, organization_id, now=now)


def _auto_assign_on(uow: UnitOfWork, organization_id: int) -> bool:
    return bool(uow.session.execute(
        select(Organization.auto_assign).where(Organization.id == organization_id)).scalar())


# --- transitions (the ``do_*`` functions commit and return nothing; the public ones return the view)

def do_accept(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None) -> None:
    now = now or utcnow()
    conv = load_conversation(uow, actor, conversation_id)
    me = conv.access.actor.user_id
    if conv.status == "ASSIGNED" and conv.assigned_user_id == me:
        return
    if not conv.access.can_send:  # taking a conversation means answering it
        raise PermissionDenied(f"you have no 'send' permission on channel '{conv.access.channel_key}', "
                               "so you cannot accept its conversations")
    won = uow.session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.status == "PENDING")
        .values(status="ASSIGNED", assigned_user_id=me, updated_at=now)
        .returning(Conversation.cycle_number)
    ).first()
    if won is None:
        cur = uow.session.execute(
            select(Conversation.status, Conversation.assigned_user_id).where(Conversation.id == conversation_id)
        ).one()
        if cur.status == "ASSIGNED" and cur.assigned_user_id == me:
            return
        if cur.status == "ASSIGNED":
            raise Conflict(f"conversation {conversation_id} was already accepted by "
                           f"{_user_name(uow, cur.assigned_user_id)}")
        raise Conflict(f"conversation {conversation_id} is completed; reopen it before accepting it")
    append_event(uow, organization_id=conv.organization_id, conversation_id=conversation_id,
                 type="ACCEPTED", occurred_at=now, actor_user_id=me, data={"cycle": won.cycle_number})
    uow.session.execute(update(User).where(User.id == me).values(last_assigned_at=now))
    uow.commit()


def do_release(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None,
               *, event: str = "RELEASED") -> None:
    now = now or utcnow()
    conv = load_conversation(uow, actor, conversation_id, lock=True)
    me = conv.access.actor
    if conv.status == "PENDING":
        uow.commit()
        return
    if conv.status == "COMPLETED":
        raise Conflict(f"conversation {conversation_id} is completed; there is nothing to release")
    if conv.assigned_user_id != me.user_id and not me.is_manager:
        raise PermissionDenied(f"conversation {conversation_id} is assigned to "
                               f"{_user_name(uow, conv.assigned_user_id)}; only the assignee or a "
                               "manager may release it")
    uow.session.execute(update(Conversation).where(Conversation.id == conversation_id)
                        .values(status="PENDING", assigned_user_id=None, updated_at=now))
    append_event(uow, organization_id=conv.organization_id, conversation_id=conversation_id, type=event,
                 occurred_at=now, actor_user_id=me.user_id,
                 data={"from_user_id": conv.assigned_user_id, "cycle": conv.cycle_number})
    if _auto_assign_on(uow, conv.organization_id):
        _drain(uow, conv.organization_id, now)
    uow.commit()


def do_complete(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None) -> None:
    now = now or utcnow()
    conv = load_conversation(uow, actor, conversation_id, lock=True)
    me = conv.access.actor
    if conv.status == "COMPLETED":
        uow.commit()
        return
    if conv.status == "PENDING" and not me.is_manager:
        raise PermissionDenied(f"conversation {conversation_id} is not assigned to you; accept it "
                               "before completing it")
    if conv.status == "ASSIGNED" and conv.assigned_user_id != me.user_id and not me.is_manager:
        raise PermissionDenied(f"conversation {conversation_id} is assigned to "
                               f"{_user_name(uow, conv.assigned_user_id)}; only the assignee or a "
                               "manager may complete it")
    uow.session.execute(update(Conversation).where(Conversation.id == conversation_id)
                        .values(status="COMPLETED", assigned_user_id=None, awaiting_reply=False,
                                updated_at=now))
    append_event(uow, organization_id=conv.organization_id, conversation_id=conversation_id,
                 type="COMPLETED", occurred_at=now, actor_user_id=me.user_id,
                 data={"assigned_user_id": conv.assigned_user_id, "cycle": conv.cycle_number})
    if _auto_assign_on(uow, conv.organization_id):
        _drain(uow, conv.organization_id, now)
    uow.commit()


def do_reassign(uow: UnitOfWork, actor: Actor, conversation_id: int, to_user_id: int,
                now: datetime | None = None) -> None:
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
    if conv.status == "COMPLETED":
        raise Conflict(f"conversation {conversation_id} is completed; reopen it before reassigning it")
    if conv.status == "ASSIGNED" and conv.assigned_user_id == to_user_id:
        uow.commit()
        return
    uow.session.execute(update(Conversation).where(Conversation.id == conversation_id)
                        .values(status="ASSIGNED", assigned_user_id=to_user_id, updated_at=now))
    append_event(uow, organization_id=conv.organization_id, conversation_id=conversation_id,
                 type="REASSIGNED", occurred_at=now, actor_user_id=me.user_id,
                 data={"from_user_id": conv.assigned_user_id, "to_user_id": to_user_id,
                       "cycle": conv.cycle_number})
    uow.session.execute(update(User).where(User.id == to_user_id).values(last_assigned_at=now))
    uow.commit()


def do_reopen(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None) -> None:
    now = now or utcnow()
    conv = load_conversation(uow, actor, conversation_id, lock=True)
    if conv.status != "COMPLETED":
        uow.commit()
        return
    uow.session.execute(update(Conversation).where(Conversation.id == conversation_id).values(
        status="PENDING", assigned_user_id=None, cycle_number=Conversation.cycle_number + 1,
        cycle_started_at=now, first_response_at=None, updated_at=now))
    append_event(uow, organization_id=conv.organization_id, conversation_id=conversation_id,
                 type="REOPENED", occurred_at=now, actor_user_id=conv.access.actor.user_id,
                 data={"cycle": conv.cycle_number + 1, "by": "agent"})
    if _auto_assign_on(uow, conv.organization_id):
        _drain(uow, conv.organization_id, now)
    uow.commit()


# --- the API the app, the flows and the CLI call

def accept(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None
           ) -> ConversationView:
    """PENDING → ASSIGNED to the actor; exactly one winner; the loser gets Conflict naming the winner."""
    do_accept(uow, actor, conversation_id, now)
    return load_view(uow, conversation_id)


def release(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None
            ) -> ConversationView:
    """ASSIGNED → PENDING (RELEASED); only the assignee or a manager."""
    do_release(uow, actor, conversation_id, now)
    return load_view(uow, conversation_id)


def complete(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None
             ) -> ConversationView:
    """→ COMPLETED; the assignee, or a manager (also from PENDING)."""
    do_complete(uow, actor, conversation_id, now)
    return load_view(uow, conversation_id)


def reassign(uow: UnitOfWork, actor: Actor, conversation_id: int, to_user_id: int,
             now: datetime | None = None) -> ConversationView:
    """Manager only: assign to an active user of the organization who may view the channel."""
    do_reassign(uow, actor, conversation_id, to_user_id, now)
    return load_view(uow, conversation_id)


def reopen(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None
           ) -> ConversationView:
    """COMPLETED → PENDING with a new cycle (REOPENED); anyone who may view the channel."""
    do_reopen(uow, actor, conversation_id, now)
    return load_view(uow, conversation_id)


def mark_read(uow: UnitOfWork, actor: Actor, conversation_id: int, now: datetime | None = None) -> None:
    """unread_count = 0 (no event: reading is not a state change of the conversation)."""
    load_conversation(uow, actor, conversation_id)
    uow.session.execute(update(Conversation)
                        .where(Conversation.id == conversation_id, Conversation.unread_count != 0)
                        .values(unread_count=0))
    uow.commit()


def open_assigned_count(uow: UnitOfWork, user_id: int) -> int:
    return int(uow.session.execute(
        select(func.count()).where(Conversation.assigned_user_id == user_id,
                                   Conversation.status == "ASSIGNED")).scalar_one())
