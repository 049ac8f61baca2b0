"""Starting a conversation: an agent writes to a customer first (the New message page, the API).

``start_conversation(uow, actor, channel_id, recipient, *, body=None, template_id=None,
parameters=None, idempotency_key, now=None) -> MessageView``

* requires 'send' on the channel (other organizations' channels are NotFound);
* ``recipient`` as the agent typed it, checked per platform by :mod:`switchboard.domain.recipients`:
  WhatsApp (and the sandbox) a phone number with country code, normalised to E.164 and stored as the
  ``wa_id`` (digits without ``+``); Telegram ``@username`` (a contact already known by that name) or a
  numeric chat id; Messenger/Instagram only a person who already wrote to the page (their PSID/IGSID,
  with a conversation on this channel) — a page cannot message a person first;
* finds the contact or creates it; finds the channel's conversation with that contact (one per channel
  and contact) or creates it (CREATED), and hands it to the sender (:func:`services.conversations.take_up`:
  a pending one is accepted, a completed one reopened as a new cycle straight to the sender);
* queues the first message through the ordinary paths: exactly one of ``body`` (free text, only where
  the messaging window allows it — a brand-new WhatsApp conversation does not, so it needs a template)
  or ``template_id`` + ``parameters`` (``{"body": [...], "header": [...], "button:0": [...]}``,
  :func:`services.templates.enqueue_template`);
* idempotent on ``idempotency_key``: a retry returns the same message and creates nothing more.

``contact_id=`` instead of a typed recipient: a contact picked from ``search_contacts``.
``new_message_window`` says what the first message may be (free text, template only, closed);
``sendable_channels`` lists the channels the actor may send on.

The message is written by the acting user (``author_kind`` agent). A refusal leaves nothing written
(the entrypoint rolls back).

``search_contacts(uow, actor, channel_id, query, limit=20)`` lists the contacts one may start a
conversation with on a channel one may view (for Messenger/Instagram only those who wrote to it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.clock import utcnow
from switchboard.db.schema import Channel, Contact, Conversation, Message
from switchboard.domain.conversation import EventType, new_conversation
from switchboard.domain.messaging_window import (
    TAG_PROVIDERS,
    MessagingWindow,
    label,
    messaging_window,
    require_free_text,
)
from switchboard.domain.recipients import Recipient, parse_recipient
from switchboard.errors import Conflict, InvalidInput, NotFound
from switchboard.policy import can_send_channel, require_send, require_view, verify_actor
from switchboard.services.attachments import OutgoingFile, enqueue_attachment
from switchboard.services.contacts import ContactSighting, upsert_contacts
from switchboard.services.conversations import contact_handle, contact_label, take_up
from switchboard.services.events import append_event
from switchboard.services.inbox_views import like_pattern
from switchboard.services.messages import MessageView, load_message
from switchboard.services.outbox import clean_key, enqueue_reply
from switchboard.services.templates import enqueue_template
from switchboard.types import Actor, ContactRef
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class ContactOption:
    """A contact one may write to on a channel, as the New message page lists it."""

    id: int
    name: str
    handle: str
    provider_contact_id: str
    conversation_id: int | None  # the channel's conversation with this contact, if any
    conversation_status: str | None


def _exactly_one_content(body: str | None, template_id: int | None, file: OutgoingFile | None) -> None:
    given = [body is not None and bool(body.strip()), template_id is not None, file is not None]
    if given.count(True) != 1:
        raise InvalidInput("give a message text, a template or a file (exactly one)")


def _replayed(uow: UnitOfWork, organization_id: int, key: str, channel_id: int) -> MessageView | None:
    row = uow.session.execute(select(Message.id, Message.channel_id).where(
        Message.organization_id == organization_id, Message.idempotency_key == key)).first()
    if row is None:
        return None
    if row.channel_id != channel_id:
        raise Conflict(f"idempotency key {key!r} was already used for a message on another channel")
    return load_message(uow, int(row.id))


def _find_contact(uow: UnitOfWork, organization_id: int, who: Recipient) -> int | None:
    where = (Contact.provider_contact_id == who.provider_contact_id if who.provider_contact_id is not None
             else func.lower(Contact.username) == (who.username or "").lower())
    found = uow.session.execute(select(Contact.id).where(
        Contact.organization_id == organization_id, Contact.provider == who.provider, where)
        .order_by(Contact.last_seen_at.desc()).limit(1)).scalar()
    return None if found is None else int(found)


def _conversation(uow: UnitOfWork, channel_id: int, contact_id: int, *, lock: bool = True
                  ) -> tuple[int, datetime | None] | None:
    stmt = select(Conversation.id, Conversation.last_inbound_at).where(
        Conversation.channel_id == channel_id, Conversation.contact_id == contact_id)
    row = uow.session.execute(stmt.with_for_update() if lock else stmt).first()
    return None if row is None else (int(row.id), row.last_inbound_at)


def _create_contact(uow: UnitOfWork, organization_id: int, who: Recipient, now: datetime) -> int:
    assert who.provider_contact_id is not None
    ref = ContactRef(who.provider_contact_id, phone=who.phone, metadata={"added_by": "agent"})
    ids = upsert_contacts(uow, organization_id=organization_id, provider=who.provider,
                          sightings={who.provider_contact_id: ContactSighting(ref, now, now)})
    return ids[who.provider_contact_id]


def _create_conversation(uow: UnitOfWork, actor: Actor, organization_id: int, channel_id: int, contact_id: int,
                         now: datetime) -> int:
    """A new PENDING conversation (CREATED, by the acting user); a concurrent creator's row if it won."""
    state = new_conversation(now, None)
    new_id = uow.session.execute(pg_insert(Conversation).values(
        organization_id=organization_id, channel_id=channel_id, contact_id=contact_id, status=state.status,
        cycle_number=state.cycle_number, cycle_started_at=state.cycle_started_at, last_message_at=now,
        created_at=now, updated_at=now,
    ).on_conflict_do_nothing(index_elements=[Conversation.channel_id, Conversation.contact_id])
        .returning(Conversation.id)).scalar()
    if new_id is None:
        found = _conversation(uow, channel_id, contact_id)
        assert found is not None
        return found[0]
    append_event(uow, organization_id=organization_id, conversation_id=int(new_id), type=EventType.CREATED,
                 occurred_at=now, actor_user_id=actor.acting_user_id,
                 data={"contact_id": contact_id, "by": "agent", "cycle": state.cycle_number})
    return int(new_id)


def _channel_provider(uow: UnitOfWork, channel_id: int) -> str:
    return str(uow.session.execute(select(Channel.provider).where(Channel.id == channel_id)).scalar_one())


def _known_contact(uow: UnitOfWork, organization_id: int, provider: str, contact_id: int) -> int:
    found = uow.session.execute(select(Contact.id).where(
        Contact.id == contact_id, Contact.organization_id == organization_id, Contact.provider == provider)).scalar()
    if found is None:
        raise NotFound(f"contact {contact_id} not found on this channel's platform")
    return int(found)


def start_conversation(uow: UnitOfWork, actor: Actor, channel_id: int, recipient: str, *, body: str | None = None,
                       template_id: int | None = None, parameters: Mapping[str, Sequence[str]] | None = None,
                       idempotency_key: str, contact_id: int | None = None, file: OutgoingFile | None = None,
                       now: datetime | None = None) -> MessageView:
    """Write to a customer first (see the module docstring); returns the queued (PENDING) message: a
    text, a template or a ``file`` (as free text, only where the messaging window allows it).
    ``contact_id``: an existing contact picked from :func:`search_contacts` (``recipient`` is then ignored)."""
    now = now or utcnow()
    key = clean_key(idempotency_key)
    access = require_send(uow, actor, channel_id)
    _exactly_one_content(body, template_id, file)
    me = access.actor
    replayed = _replayed(uow, me.organization_id, key, channel_id)
    if replayed is not None:
        return replayed
    provider = _channel_provider(uow, channel_id)
    who: Recipient | None = None
    if contact_id is not None:
        contact_id = _known_contact(uow, me.organization_id, provider, contact_id)
    else:
        who = parse_recipient(provider, recipient)
        contact_id = _find_contact(uow, me.organization_id, who)
    found = None if contact_id is None else _conversation(uow, channel_id, contact_id)
    if found is None and provider in TAG_PROVIDERS:
        raise InvalidInput(f"{label(provider)} cannot message a person first: {who.shown if who else 'this contact'} "
                           "has not written to this page; pick a contact who already did")
    if contact_id is None and who is not None and who.provider_contact_id is None:
        raise InvalidInput(f"no {label(provider)} contact {who.shown} is known yet: ask them to write first "
                           "or enter their numeric chat id")
    if template_id is None:  # text or a file: refuse before anything is written, with the window's sentence
        require_free_text(messaging_window(provider, None if found is None else found[1], now))
    if contact_id is None:
        assert who is not None
        contact_id = _create_contact(uow, me.organization_id, who, now)
    conversation_id = found[0] if found is not None else _create_conversation(
        uow, me, me.organization_id, channel_id, contact_id, now)
    take_up(uow, me, conversation_id, now)
    if template_id is not None:
        return enqueue_template(uow, me, conversation_id, template_id, parameters or {}, idempotency_key=key,
                                now=now)
    if file is not None:
        return enqueue_attachment(uow, me, conversation_id, file_name=file.file_name, mime_type=file.mime_type,
                                  data=file.data, caption=file.caption, idempotency_key=key, now=now)
    assert body is not None
    return enqueue_reply(uow, me, conversation_id, body, idempotency_key=key, now=now)


def new_message_window(uow: UnitOfWork, actor: Actor, channel_id: int, contact_id: int | None = None,
                       now: datetime | None = None, *, recipient: str | None = None) -> MessagingWindow:
    """What a first message to this contact (or to the typed ``recipient``; neither: a new one) on this
    channel may be: the window of their conversation on the channel, or that of a customer who never
    wrote (WhatsApp: template only)."""
    access = require_send(uow, actor, channel_id)
    organization_id = access.actor.organization_id
    provider = _channel_provider(uow, channel_id)
    if contact_id is not None:
        contact_id = _known_contact(uow, organization_id, provider, contact_id)
    elif recipient:
        contact_id = _find_contact(uow, organization_id, parse_recipient(provider, recipient))
    found = None if contact_id is None else _conversation(uow, channel_id, contact_id, lock=False)
    return messaging_window(provider, None if found is None else found[1], now or utcnow())


@dataclass(frozen=True, slots=True)
class ChannelOption:
    id: int
    key: str
    name: str
    provider: str
    status: str


def sendable_channels(uow: UnitOfWork, actor: Actor) -> list[ChannelOption]:
    """The channels the actor may send on (managers and admins: all of the organization's)."""
    me = verify_actor(uow, actor)
    rows = uow.session.execute(select(Channel.id, Channel.key, Channel.name, Channel.provider, Channel.status)
                               .where(Channel.organization_id == me.organization_id).order_by(Channel.name))
    return [ChannelOption(int(r.id), r.key, r.name, r.provider, r.status) for r in rows
            if me.is_manager or can_send_channel(uow, me, int(r.id))]


def search_contacts(uow: UnitOfWork, actor: Actor, channel_id: int, query: str = "", limit: int = 20
                    ) -> list[ContactOption]:
    """Contacts of the channel's platform matching ``query`` (name, @username, phone or platform id),
    most recently seen first, with the channel's conversation with each; on Messenger/Instagram only
    people who wrote to this channel (a page cannot message anyone else). Needs 'view' on the channel."""
    access = require_view(uow, actor, channel_id)
    if limit < 1 or limit > 200:
        raise InvalidInput("limit must be between 1 and 200")
    provider = uow.session.execute(select(Channel.provider).where(Channel.id == channel_id)).scalar_one()
    stmt = (select(Contact.id, Contact.display_name, Contact.username, Contact.phone, Contact.provider_contact_id,
                   Conversation.id.label("conversation_id"), Conversation.status)
            .outerjoin(Conversation, (Conversation.contact_id == Contact.id) & (Conversation.channel_id == channel_id))
            .where(Contact.organization_id == access.actor.organization_id, Contact.provider == provider)
            .order_by(Contact.last_seen_at.desc(), Contact.id.desc()).limit(limit))
    text = (query or "").strip()
    if text:
        pattern = like_pattern(text.lstrip("@+") or text)
        stmt = stmt.where(or_(*(c.ilike(pattern) for c in (
            Contact.display_name, Contact.username, Contact.phone, Contact.provider_contact_id))))
    if provider in TAG_PROVIDERS:
        stmt = stmt.where(Conversation.id.is_not(None))
    return [ContactOption(int(r.id), contact_label(r.display_name, r.username, r.phone, r.provider_contact_id),
                          contact_handle(r.username, r.phone, r.provider_contact_id), r.provider_contact_id,
                          r.conversation_id, r.status) for r in uow.session.execute(stmt)]

