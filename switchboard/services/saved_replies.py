"""Saved replies (canned responses) of an organization: managers keep them, agents insert them.

Placeholders (``{name}``, ``{first_name}``, ``{agent_name}``) and their checks are the rules of
:mod:`switchboard.domain.saved_replies`; a body with an unknown placeholder is refused at save time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.auth.audit import record_audit
from switchboard.clock import utcnow
from switchboard.db.schema import Contact, Conversation, SavedReply, User
from switchboard.domain.saved_replies import clean_saved_reply, fill
from switchboard.errors import Conflict, NotFound
from switchboard.policy import Action, require
from switchboard.services.conversations import load_conversation
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class SavedReplyView:
    id: int
    code: str
    title: str
    body: str
    created_by: str | None
    updated_at: datetime


def list_saved_replies(uow: UnitOfWork, actor: Actor) -> list[SavedReplyView]:
    """The organization's saved replies by short code (everyone who works the inbox)."""
    me = require(uow, actor, Action.WORK_INBOX)
    rows = uow.session.execute(
        select(SavedReply.id, SavedReply.code, SavedReply.title, SavedReply.body, User.name, SavedReply.updated_at)
        .outerjoin(User, User.id == SavedReply.created_by_user_id)
        .where(SavedReply.organization_id == me.organization_id).order_by(SavedReply.code)
    ).all()
    return [SavedReplyView(r.id, r.code, r.title, r.body, r.name, r.updated_at) for r in rows]


def _load(uow: UnitOfWork, actor: Actor, saved_reply_id: int) -> SavedReply:
    row = uow.session.get(SavedReply, saved_reply_id)
    if row is None or row.organization_id != actor.organization_id:
        raise NotFound(f"saved reply {saved_reply_id} not found")
    return row


def _code_taken(uow: UnitOfWork, organization_id: int, code: str, other_than: int | None = None) -> None:
    found = uow.session.execute(select(SavedReply.id).where(
        SavedReply.organization_id == organization_id, SavedReply.code == code)).scalar()
    if found is not None and found != other_than:
        raise Conflict(f"the short code '{code}' is already used by another saved reply")


def create_saved_reply(uow: UnitOfWork, actor: Actor, *, code: str, title: str, body: str,
                       now: datetime | None = None) -> SavedReplyView:
    """Manager: a new saved reply (the short code is unique in the organization)."""
    now = now or utcnow()
    me = require(uow, actor, Action.MANAGE_SAVED_REPLIES)
    clean = clean_saved_reply(code, title, body)
    _code_taken(uow, me.organization_id, clean.code)
    new_id = uow.session.execute(pg_insert(SavedReply).values(
        organization_id=me.organization_id, code=clean.code, title=clean.title, body=clean.body,
        created_by_user_id=me.acting_user_id, created_at=now, updated_at=now,
    ).on_conflict_do_nothing().returning(SavedReply.id)).scalar()
    if new_id is None:  # a concurrent save of the same code won
        raise Conflict(f"the short code '{clean.code}' is already used by another saved reply")
    record_audit(uow, organization_id=me.organization_id, actor_user_id=me.acting_user_id,
                 action="saved_reply.created", target=clean.code, details={"title": clean.title}, now=now)
    return _view(uow, me, int(new_id))


def update_saved_reply(uow: UnitOfWork, actor: Actor, saved_reply_id: int, *, code: str, title: str, body: str,
                       now: datetime | None = None) -> SavedReplyView:
    """Manager: change a saved reply's code, title or text (an unchanged save writes nothing)."""
    now = now or utcnow()
    me = require(uow, actor, Action.MANAGE_SAVED_REPLIES)
    row = _load(uow, me, saved_reply_id)
    clean = clean_saved_reply(code, title, body)
    changed = {k: v for k, v in (("code", clean.code), ("title", clean.title), ("body", clean.body))
               if getattr(row, k) != v}
    if changed:
        if "code" in changed:
            _code_taken(uow, me.organization_id, clean.code, other_than=saved_reply_id)
        before_code = row.code
        uow.session.execute(update(SavedReply).where(SavedReply.id == saved_reply_id)
                            .values(**changed, updated_at=now))
        record_audit(uow, organization_id=me.organization_id, actor_user_id=me.acting_user_id,
                     action="saved_reply.updated", target=before_code, details={"changed": sorted(changed)},
                     now=now)
    return _view(uow, me, saved_reply_id)


def delete_saved_reply(uow: UnitOfWork, actor: Actor, saved_reply_id: int, now: datetime | None = None) -> None:
    """Manager: remove a saved reply."""
    me = require(uow, actor, Action.MANAGE_SAVED_REPLIES)
    row = _load(uow, me, saved_reply_id)
    code = row.code
    uow.session.execute(delete(SavedReply).where(SavedReply.id == saved_reply_id))
    record_audit(uow, organization_id=me.organization_id, actor_user_id=me.acting_user_id,
                 action="saved_reply.deleted", target=code, now=now)


def render_saved_reply(uow: UnitOfWork, actor: Actor, saved_reply_id: int, conversation_id: int) -> str:
    """A saved reply's text for one conversation the actor may view, its placeholders filled in."""
    me = require(uow, actor, Action.WORK_INBOX)
    conv = load_conversation(uow, me, conversation_id)
    reply = _load(uow, me, saved_reply_id)
    contact = uow.session.execute(
        select(Contact.display_name, Contact.username).join(Conversation, Conversation.contact_id == Contact.id)
        .where(Conversation.id == conv.id)).one()
    agent = None if me.is_system else uow.session.execute(
        select(User.name).where(User.id == me.user_id)).scalar()
    return fill(reply.body, contact_name=contact.display_name or contact.username, agent_name=agent)


def _view(uow: UnitOfWork, actor: Actor, saved_reply_id: int) -> SavedReplyView:
    return next(v for v in list_saved_replies(uow, actor) if v.id == saved_reply_id)
