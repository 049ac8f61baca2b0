"""Reads the HTTP API needs beside the inbox views: one message by id, the contact directory, a
channel by its key, a user by email. Each checks the policy like every service (other organizations:
not found; channels the caller may not view: refused)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, or_, select, tuple_

from switchboard.db.schema import Channel, Contact, Conversation, Message, MessageTemplate, User
from switchboard.errors import NotFound
from switchboard.policy import Action, require, require_view, visible_channel_ids
from switchboard.services.conversations import load_conversation
from switchboard.services.inbox_views import (
    Page,
    _id,
    _limit,
    _ts,
    decode_cursor,
    encode_cursor,
    like_pattern,
)
from switchboard.services.messages import MessageView, load_message
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class ContactView:
    id: int
    provider: str
    provider_contact_id: str
    display_name: str | None
    username: str | None
    phone: str | None
    first_seen_at: datetime
    last_seen_at: datetime


def get_message(uow: UnitOfWork, actor: Actor, message_id: int) -> MessageView:
    """One message of a conversation the actor may view (NotFound otherwise, whatever the reason)."""
    me = require(uow, actor, Action.READ_MESSAGES)
    row = uow.session.execute(select(Message.organization_id, Message.conversation_id)
                              .where(Message.id == message_id)).first()
    if row is None or row.organization_id != me.organization_id:
        raise NotFound(f"message {message_id} not found")
    load_conversation(uow, me, row.conversation_id)
    return load_message(uow, message_id)


def list_contacts(uow: UnitOfWork, actor: Actor, *, search: str | None = None, cursor: str | None = None,
                  limit: int = 50) -> Page[ContactView]:
    """Contacts seen most recently first, matching ``search`` (name, username, phone, platform id); only
    contacts with a conversation on a channel the actor may view. Keyset pages (``last_seen_at, id``)."""
    limit = _limit(limit)
    me = require(uow, actor, Action.READ_CONTACTS)
    visible = visible_channel_ids(uow, me)
    conds = [Contact.organization_id == me.organization_id]
    if visible is not None:
        if not visible:
            return Page([], None)
        conds.append(exists().where(Conversation.contact_id == Contact.id,
                                    Conversation.channel_id.in_(sorted(visible))))
    if search and search.strip():
        pat = like_pattern(search.strip())
        conds.append(or_(Contact.display_name.ilike(pat), Contact.username.ilike(pat), Contact.phone.ilike(pat),
                         Contact.provider_contact_id.ilike(pat)))
    if cursor:
        at, rid = decode_cursor(cursor)
        conds.append(tuple_(Contact.last_seen_at, Contact.id) < tuple_(_ts(at), _id(rid)))
    rows = uow.session.execute(select(Contact).where(*conds)
                               .order_by(Contact.last_seen_at.desc(), Contact.id.desc()).limit(limit + 1)).scalars().all()
    items = [ContactView(c.id, c.provider, c.provider_contact_id, c.display_name, c.username, c.phone,
                         c.first_seen_at, c.last_seen_at) for c in rows[:limit]]
    nxt = encode_cursor(items[-1].last_seen_at, items[-1].id) if len(rows) > limit else None
    return Page(items, nxt)


def channel_id_by_key(uow: UnitOfWork, actor: Actor, key: str) -> int:
    """The id of the organization's channel ``key`` that the actor may view."""
    row = uow.session.execute(select(Channel.id).where(Channel.organization_id == actor.organization_id,
                                                       Channel.key == (key or "").strip())).first()
    if row is None:
        raise NotFound(f"no channel {key!r} in your organization")
    require_view(uow, actor, int(row.id))
    return int(row.id)


def user_id_by_email(uow: UnitOfWork, actor: Actor, email: str) -> int:
    """The id of the user of the actor's organization with ``email`` (any letter case)."""
    me = require(uow, actor, Action.ASSIGN)
    row = uow.session.execute(select(User.id).where(User.organization_id == me.organization_id,
                                                    func.lower(User.email) == (email or "").strip().lower())).first()
    if row is None:
        raise NotFound(f"no user {email!r} in your organization")
    return int(row.id)


def template_id_by_name(uow: UnitOfWork, actor: Actor, channel_id: int, name: str, language: str) -> int:
    """The id of the channel's template ``name`` in ``language`` (the outbox checks that it is approved)."""
    require_view(uow, actor, channel_id)
    row = uow.session.execute(select(MessageTemplate.id).where(
        MessageTemplate.channel_id == channel_id, MessageTemplate.name == name.strip(),
        MessageTemplate.language == language.strip())).first()
    if row is None:
        raise NotFound(f"no template {name!r} in language {language!r} on this channel")
    return int(row.id)
