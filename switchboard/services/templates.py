"""Message templates: a channel's catalogue kept in Postgres, listed for a conversation, sent.

* ``sync_templates`` stores what the platform listed (the workflow step fetches it through the
  connector): new templates are inserted, known ones updated, ones the platform no longer lists get
  ``removed_at`` (kept: old messages name them).
* ``list_templates`` gives the approved templates of a conversation's channel with their parameter
  slots (view on the channel); ``channel_templates`` those of a channel (New message), or its whole
  catalogue (Channels & health).
* ``enqueue_template`` queues a template message: approved only, the parameters checked against the
  template's header/body/button ``{{n}}`` before anything is written; the rendered text is the body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.clock import utcnow
from switchboard.db.schema import Channel, MessageTemplate
from switchboard.domain.conversation import ConversationAction, check, outbound_author
from switchboard.domain.templates import APPROVED, Slot, check_parameters, cloud_api_template, render, slots
from switchboard.errors import InvalidInput, NotFound
from switchboard.policy import Action, require, require_organization, require_view
from switchboard.services.conversations import load_conversation
from switchboard.services.messages import MessageView, load_message
from switchboard.services.outbox import clean_key, existing_message, insert_outbound
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class TemplateView:
    id: int
    channel_id: int
    name: str
    language: str
    category: str | None
    status: str
    components: list[dict[str, Any]]
    removed: bool

    @property
    def slots(self) -> list[Slot]:
        return slots(self.components)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.language})"


@dataclass(frozen=True, slots=True)
class SyncResult:
    inserted: int
    updated: int
    removed: int


def _view(row: MessageTemplate) -> TemplateView:
    return TemplateView(row.id, row.channel_id, row.name, row.language, row.category, row.status,
                        list(row.components or []), row.removed_at is not None)


def _field(template: Mapping[str, Any], name: str) -> str:
    value = str(template.get(name) or "").strip()
    if not value:
        raise InvalidInput(f"a template without a {name}: {dict(template)!r}"[:300])
    return value


def sync_templates(uow: UnitOfWork, actor: Actor, channel_id: int, templates: Sequence[Mapping[str, Any]],
                   now: datetime | None = None) -> SyncResult:
    """Store the catalogue the platform listed for the channel (``name, language, status, category,
    components`` each); mark the ones it no longer lists as removed. Admins and the system actor."""
    now = now or utcnow()
    authorize_template_sync(uow, actor, channel_id)
    channel = uow.session.get(Channel, channel_id)
    assert channel is not None
    known = {(r.name, r.language): r.removed_at for r in uow.session.execute(
        select(MessageTemplate.name, MessageTemplate.language, MessageTemplate.removed_at)
        .where(MessageTemplate.channel_id == channel_id))}
    seen: set[tuple[str, str]] = set()
    for t in templates:
        name, language, status = _field(t, "name"), _field(t, "language"), _field(t, "status").upper()
        seen.add((name, language))
        values = {"category": (str(t["category"]).upper() if t.get("category") else None), "status": status,
                  "components": [dict(c) for c in t.get("components") or () if isinstance(c, Mapping)],
                  "removed_at": None, "synced_at": now}
        stmt = pg_insert(MessageTemplate).values(organization_id=channel.organization_id, channel_id=channel_id,
                                                 name=name, language=language, **values)
        uow.session.execute(stmt.on_conflict_do_update(
            index_elements=[MessageTemplate.channel_id, MessageTemplate.name, MessageTemplate.language],
            set_=values))
    vanished = [key for key, removed_at in known.items() if key not in seen and removed_at is None]
    for name, language in vanished:
        uow.session.execute(update(MessageTemplate).where(
            MessageTemplate.channel_id == channel_id, MessageTemplate.name == name,
            MessageTemplate.language == language).values(removed_at=now, synced_at=now))
    inserted = len(seen - set(known))
    return SyncResult(inserted=inserted, updated=len(seen) - inserted, removed=len(vanished))


def _channel_templates(uow: UnitOfWork, channel_id: int, approved_only: bool) -> list[TemplateView]:
    stmt = select(MessageTemplate).where(MessageTemplate.channel_id == channel_id)
    if approved_only:
        stmt = stmt.where(MessageTemplate.status == APPROVED, MessageTemplate.removed_at.is_(None))
    rows = uow.session.execute(stmt.order_by(MessageTemplate.name, MessageTemplate.language)).scalars()
    return [_view(r) for r in rows]


def list_templates(uow: UnitOfWork, actor: Actor, conversation_id: int) -> list[TemplateView]:
    """The approved, still listed templates of the conversation's channel (view on the channel)."""
    conv = load_conversation(uow, actor, conversation_id)
    return _channel_templates(uow, conv.channel_id, True)


def channel_templates(uow: UnitOfWork, actor: Actor, channel_id: int, *, approved_only: bool = True
                      ) -> list[TemplateView]:
    """A channel's templates (view on the channel): the approved, still listed ones to send (New
    message), or the whole catalogue with every status and the removed ones (Channels & health)."""
    require_view(uow, actor, channel_id)
    return _channel_templates(uow, channel_id, approved_only)


def authorize_template_sync(uow: UnitOfWork, actor: Actor, channel_id: int) -> None:
    """May the actor sync this channel's catalogue now (admins; NotFound for another organization's
    channel)? Checked before the platform is asked (the Sync templates button)."""
    me = require(uow, actor, Action.MANAGE_CHANNELS)
    channel = uow.session.get(Channel, channel_id)
    require_organization(me, None if channel is None else channel.organization_id, f"channel {channel_id}")


def enqueue_template(uow: UnitOfWork, actor: Actor, conversation_id: int, template_id: int,
                     parameters: Mapping[str, Sequence[str]], *, idempotency_key: str,
                     now: datetime | None = None) -> MessageView:
    """Queue an approved template with its parameters (``{"header": [...], "body": [...],
    "button:0": [...]}``); only who may reply (the assignee or a manager, with 'send'). Wrong
    parameter counts, an unapproved template or one of another channel are refused before anything
    is written. The same idempotency key returns the same message."""
    now = now or utcnow()
    key = clean_key(idempotency_key)
    conv = load_conversation(uow, actor, conversation_id, lock=True)
    mid = existing_message(uow, conv.organization_id, key, conversation_id)
    if mid is None:
        check(ConversationAction.REPLY, conv.participant, conv.facts)
        row = uow.session.get(MessageTemplate, template_id)
        if row is None or row.channel_id != conv.channel_id:
            raise NotFound(f"template {template_id} not found on this conversation's channel")
        if row.removed_at is not None or row.status != APPROVED:
            raise InvalidInput(f"template {row.name!r} is {'no longer listed' if row.removed_at else row.status}; "
                               "only approved templates can be sent")
        values = check_parameters(row.components, parameters)
        mid = insert_outbound(uow, organization_id=conv.organization_id, conversation_id=conversation_id,
                              channel_id=conv.channel_id, body=render(row.components, values),
                              author_kind=outbound_author(conv.access.actor.acting_user_id),
                              author_user_id=conv.access.actor.acting_user_id,
                              key=key, now=now, reply_to=None,
                              template=cloud_api_template(row.name, row.language, row.components, values))
    return load_message(uow, mid)
