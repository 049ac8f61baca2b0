"""Write a batch's new messages: contacts, conversations, messages, attachments, events.

A message goes to its sender's conversation on the channel, unless it continues a thread of another
conversation (``InboundMessage.thread_ids``, email replies): then it joins that conversation.

Erased content stays erased: messages whose tombstone ingest finds are dropped (counted as
``messages_erased``, see :mod:`switchboard.services.erasure`).

Idempotent: a message is unique per (channel, provider message id) and inserted with
``ON CONFLICT DO NOTHING``; the conversations it touches are locked (``FOR UPDATE``, in id order)
before anything is derived from their state, so two workers ingesting the same batch at the same time
produce one message, one event and one unread increment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from psycopg.errors import UniqueViolation
from sqlalchemy.exc import IntegrityError

from switchboard.domain.conversation import AuthorKind, Direction, EventType, MessageStatus
from switchboard.services.contacts import merge_sightings, upsert_contacts
from switchboard.services.erasure import drop_erased
from switchboard.services.events import NewEvent, append_events
from switchboard.services.ingest import replay as rp
from switchboard.services.ingest import statements as sql
from switchboard.services.ingest.replay import TrackedConversation
from switchboard.services.ingest.result import Tally
from switchboard.types import InboundMessage
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Target:
    organization_id: int
    channel_id: int
    provider: str


def ingest_messages(uow: UnitOfWork, target: Target, messages: Mapping[str, InboundMessage],
                    now: datetime, tally: Tally) -> None:
    """Insert the messages not stored yet and replay them onto their conversations."""
    counts = tally.counts
    known = set(uow.session.execute(sql.KNOWN_MESSAGES, {
        "channel": target.channel_id, "ids": sql.ids_json(messages)}).scalars().all())
    fresh = [m for pmid, m in messages.items() if pmid not in known]
    counts["messages_duplicate"] += len(messages) - len(fresh)
    kept = drop_erased(uow, organization_id=target.organization_id, channel_id=target.channel_id,
                       provider=target.provider, messages=fresh)
    counts["messages_erased"] += len(fresh) - len(kept)
    fresh = kept
    if not fresh:
        return
    sightings = merge_sightings((m.contact, m.sent_at) for m in fresh)
    contact_ids = upsert_contacts(uow, organization_id=target.organization_id, provider=target.provider,
                                  sightings=sightings)
    threads = _thread_contacts(uow, target.channel_id, fresh)
    by_contact: dict[int, list[InboundMessage]] = defaultdict(list)
    for m in fresh:
        by_contact[threads.get(m.provider_message_id) or contact_ids[m.contact.provider_contact_id]].append(m)
    for ms in by_contact.values():
        ms.sort(key=_sent_at)
    convs = _conversations(uow, target, by_contact, now)

    rows = [_message_row(convs[cid].id, m) for cid, ms in by_contact.items() for m in ms]
    new_ids = _insert_messages(uow, {"org": target.organization_id, "channel": target.channel_id, "now": now,
                                     "rows": sql.rows_json(rows)})
    counts["messages_duplicate"] += len(rows) - len(new_ids)
    counts["messages_created"] += len(new_ids)
    tally.message_ids.extend(new_ids.values())
    _insert_attachments(uow, fresh, new_ids)

    events: list[NewEvent] = []
    changed: list[TrackedConversation] = []
    for cid, ms in by_contact.items():
        conv = convs[cid]
        new_ms = [m for m in ms if m.provider_message_id in new_ids]
        if conv.created:
            counts["conversations_created"] += 1
            events.append(NewEvent(target.organization_id, conv.id, EventType.CREATED.value,
                                   conv.created_at or now, data={"contact_id": cid}))
            if len(new_ms) < len(ms):  # inserted with the state of all its messages: write the real one
                changed.append(conv)
        if not new_ms:
            continue
        events.extend(rp.replay(conv, new_ms, new_ids))
        if not conv.created:
            changed.append(conv)
        tally.conversation_ids.append(conv.id)
        counts["conversations_reopened"] += conv.state.reopened
    if changed:
        uow.session.execute(sql.UPDATE_CONVERSATIONS, {
            "now": now, "rows": sql.rows_json(rp.state_row(c) for c in changed)})
    append_events(uow, events)


def _insert_messages(uow: UnitOfWork, params: dict[str, object]) -> dict[str, int]:
    """Insert the batch's messages; provider message id -> id of those inserted.

    A plain INSERT first: KNOWN_MESSAGES has removed the duplicates, and ``ON CONFLICT`` costs every
    row a speculative insertion (a second look-up in the unique index and a second WAL record). Only
    when a duplicate raced in since then (the unique key refuses the statement) does the batch go again,
    in the savepoint's place, with ``ON CONFLICT DO NOTHING``.
    """
    try:
        with uow.session.begin_nested():
            rows = uow.session.execute(sql.INSERT_MESSAGES_PLAIN, params).all()
    except IntegrityError as exc:
        if not isinstance(exc.orig, UniqueViolation):
            raise
        rows = uow.session.execute(sql.INSERT_MESSAGES, params).all()
    return {pmid: mid for mid, pmid in rows}


def _thread_contacts(uow: UnitOfWork, channel_id: int, fresh: list[InboundMessage]) -> dict[str, int]:
    """Provider message id -> the contact whose conversation the message continues, for messages whose
    ``thread_ids`` name a message stored on the channel (the first one found, most specific first)."""
    wanted = {t for m in fresh for t in m.thread_ids}
    if not wanted:
        return {}
    known = {str(r.provider_message_id): int(r.contact_id) for r in uow.session.execute(
        sql.THREAD_CONTACTS, {"channel": channel_id, "ids": sql.ids_json(sorted(wanted))})}
    out: dict[str, int] = {}
    for m in fresh:
        contact = next((known[t] for t in m.thread_ids if t in known), None)
        if contact is not None:
            out[m.provider_message_id] = contact
    return out


def _sent_at(m: InboundMessage) -> datetime:
    return m.sent_at


def _lock(uow: UnitOfWork, channel_id: int, contact_ids: list[int]) -> dict[int, TrackedConversation]:
    if not contact_ids:
        return {}
    rows = uow.session.execute(sql.LOCK_CONVERSATIONS, {"channel": channel_id, "ids": sql.ids_json(contact_ids)}).all()
    return {int(r.contact_id): rp.loaded(r) for r in rows}


def _conversations(uow: UnitOfWork, target: Target, by_contact: Mapping[int, list[InboundMessage]],
                   now: datetime) -> dict[int, TrackedConversation]:
    """The locked conversation of every contact, created (with its planned state) where missing."""
    convs = _lock(uow, target.channel_id, sorted(by_contact))
    missing = sorted(set(by_contact) - set(convs))
    if not missing:
        return convs
    # inserted with the state its messages give it (one write per row, not an insert and an update)
    rows = []
    for cid in missing:
        planned = rp.created(0, target.organization_id, by_contact[cid])
        rp.replay(planned, by_contact[cid], None)
        rows.append({**rp.state_row(planned), "contact_id": cid, "created_at": planned.created_at})
    inserted: dict[int, int] = {cid: conv_id for conv_id, cid in uow.session.execute(sql.INSERT_CONVERSATIONS, {
        "org": target.organization_id, "channel": target.channel_id, "now": now, "rows": sql.rows_json(rows)}).all()}
    for cid, conv_id in inserted.items():
        convs[cid] = rp.created(conv_id, target.organization_id, by_contact[cid])
    lost = [cid for cid in missing if cid not in inserted]  # another worker created it meanwhile
    convs.update(_lock(uow, target.channel_id, lost))
    return convs


def _message_row(conversation_id: int, m: InboundMessage) -> dict[str, object]:
    inbound = m.direction == Direction.INBOUND
    return {"conversation_id": conversation_id, "direction": m.direction,
            "author_kind": AuthorKind.CUSTOMER.value if inbound else m.author_kind, "body": m.body,
            "content_type": m.content_type or "text", "provider_message_id": m.provider_message_id,
            "reply_to": m.reply_to_provider_message_id,
            "status": (MessageStatus.DELIVERED if inbound else MessageStatus.SENT).value,
            "raw": m.raw or None, "sent_at": m.sent_at}


def _insert_attachments(uow: UnitOfWork, fresh: list[InboundMessage], new_ids: Mapping[str, int]) -> None:
    rows = [
        {"message_id": new_ids[m.provider_message_id], "kind": a.kind, "mime_type": a.mime_type,
         "file_name": a.file_name, "provider_media_id": a.provider_media_id, "url": a.url,
         "size_bytes": a.size_bytes, "sha256": a.sha256, "data": a.data}
        for m in fresh if m.attachments and m.provider_message_id in new_ids for a in m.attachments
    ]
    if rows:
        uow.session.execute(sql.INSERT_ATTACHMENTS, {"rows": sql.rows_json(rows)})
