"""Ingest what connectors parsed: messages, echoes, statuses, watermarks, edits, deletions.

Batch-oriented: a batch costs a handful of set-based statements whatever its size (contact upsert,
conversation lock/create, message insert, one UPDATE of the touched conversations, one batched insert
of events), so that a sync or a burst of webhooks goes at thousands of messages per second.

Idempotent: a message is unique per (channel, provider message id) and inserted with
``ON CONFLICT DO NOTHING``; the conversations it touches are locked (``FOR UPDATE``, in id order) before
anything is derived from their state, so two workers ingesting the same batch at the same time produce
one message, one event and one unread increment. Re-ingesting a batch changes nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.clock import utcnow
from switchboard.db.schema import (
    Attachment,
    Channel,
    Contact,
    Conversation,
    Message,
    Organization,
    SyncCursor,
)
from switchboard.errors import InvalidInput, NotFound
from switchboard.services.contacts import merge_sightings, upsert_contacts
from switchboard.services.events import NewEvent, append_events
from switchboard.types import (
    Ignored,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    ParsedItem,
    ReadWatermark,
    StatusUpdate,
)
from switchboard.uow import UnitOfWork

MESSAGES = cast(Table, Message.__table__)
CONVERSATIONS = cast(Table, Conversation.__table__)
ATTACHMENTS = cast(Table, Attachment.__table__)
CURSORS = cast(Table, SyncCursor.__table__)

PREVIEW_CHARS = 200
STATUS_RANK = {"PENDING": 0, "SENT": 1, "DELIVERED": 2, "READ": 3}
STATUS_EVENT = {"SENT": "MESSAGE_SENT", "DELIVERED": "MESSAGE_DELIVERED", "READ": "MESSAGE_READ",
                "FAILED": "MESSAGE_FAILED"}


@dataclass(frozen=True, slots=True)
class IngestResult:
    messages_created: int = 0
    messages_duplicate: int = 0
    statuses_applied: int = 0
    statuses_ignored: int = 0
    edits: int = 0
    deletions: int = 0
    conversations_created: int = 0
    conversations_reopened: int = 0
    ignored: int = 0
    # provider ids of status updates whose message is not (yet) known: a processor may retry them later
    unmatched_status_ids: tuple[str, ...] = ()
    conversation_ids: tuple[int, ...] = ()  # conversations that received new messages
    message_ids: tuple[int, ...] = ()  # messages created by this batch


def preview_of(body: str | None, content_type: str) -> str:
    if body and body.strip():
        return " ".join(body.split())[:PREVIEW_CHARS]
    return f"[{content_type}]"[:PREVIEW_CHARS]


def can_advance(current: str, new: str) -> bool:
    """Message status only moves forward; FAILED is terminal; a late DELIVERED after READ is ignored."""
    if current == "FAILED":
        return False
    if new == "FAILED":
        return current != "READ"
    return STATUS_RANK.get(new, -1) > STATUS_RANK.get(current, 99)


@dataclass
class _ConvState:
    id: int
    organization_id: int
    status: str
    assigned_user_id: int | None
    unread_count: int
    last_message_preview: str | None
    last_message_at: datetime | None
    last_inbound_at: datetime | None
    cycle_number: int
    cycle_started_at: datetime | None
    first_response_at: datetime | None
    awaiting_reply: bool
    created: bool = False
    reopened: int = 0
    created_at: datetime | None = None  # set for conversations this batch creates


_CONV_COLS = (
    Conversation.id,
    Conversation.organization_id,
    Conversation.contact_id,
    Conversation.status,
    Conversation.assigned_user_id,
    Conversation.unread_count,
    Conversation.last_message_preview,
    Conversation.last_message_at,
    Conversation.last_inbound_at,
    Conversation.cycle_number,
    Conversation.cycle_started_at,
    Conversation.first_response_at,
    Conversation.awaiting_reply,
)


def _state(row: Any, created: bool = False) -> _ConvState:
    return _ConvState(row.id, row.organization_id, row.status, row.assigned_user_id, row.unread_count,
                      row.last_message_preview, row.last_message_at, row.last_inbound_at, row.cycle_number,
                      row.cycle_started_at, row.first_response_at, row.awaiting_reply, created)


@dataclass
class _Acc:
    created: int = 0
    duplicate: int = 0
    applied: int = 0
    st_ignored: int = 0
    edits: int = 0
    deletions: int = 0
    conv_created: int = 0
    reopened: int = 0
    ignored: int = 0
    unmatched: list[str] = field(default_factory=list)
    conv_ids: list[int] = field(default_factory=list)
    msg_ids: list[int] = field(default_factory=list)


def _check_aware(at: datetime, what: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"{what}: timestamp {at.isoformat()} has no timezone")


def ingest_items(
    uow: UnitOfWork,
    *,
    channel_id: int,
    items: Sequence[ParsedItem],
    now: datetime | None = None,
    cursor: tuple[str, str] | None = None,
    commit: bool = True,
) -> IngestResult:
    """Apply one batch of parsed items of one channel in one transaction (see module docstring)."""
    now = now or utcnow()
    ch = uow.session.execute(
        select(Channel.id, Channel.organization_id, Channel.provider, Organization.auto_assign)
        .join(Organization, Organization.id == Channel.organization_id)
        .where(Channel.id == channel_id)
    ).first()
    if ch is None:
        raise NotFound(f"channel {channel_id} does not exist")
    acc = _Acc()
    inbound: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    marks: list[ReadWatermark] = []
    for item in items:
        if isinstance(item, InboundMessage):
            inbound.append(item)
        elif isinstance(item, StatusUpdate):
            statuses.append(item)
        elif isinstance(item, ReadWatermark):
            marks.append(item)
            statuses.extend(StatusUpdate(pmid, item.status, item.occurred_at)
                            for pmid in item.provider_message_ids)
        elif isinstance(item, Ignored):
            acc.ignored += 1
        elif not isinstance(item, MessageEdit | MessageDeletion):
            raise InvalidInput(f"cannot ingest an item of type {type(item).__name__}")
    if inbound:
        _ingest_messages(uow, ch.organization_id, channel_id, ch.provider, inbound, now, acc)
    if statuses:
        _apply_statuses(uow, channel_id, statuses, acc)
    for mark in marks:
        _apply_watermark(uow, ch.organization_id, channel_id, ch.provider, mark, acc)
    for item in items:
        if isinstance(item, MessageEdit):
            _apply_edit(uow, channel_id, item, acc)
        elif isinstance(item, MessageDeletion):
            _apply_deletion(uow, channel_id, item, acc)
    if cursor is not None:
        scope, value = cursor
        stmt = pg_insert(CURSORS).values(channel_id=channel_id, scope=scope, cursor=value, updated_at=now)
        uow.session.execute(stmt.on_conflict_do_update(
            index_elements=[CURSORS.c.channel_id, CURSORS.c.scope],
            set_={"cursor": stmt.excluded.cursor, "updated_at": stmt.excluded.updated_at},
        ))
    if ch.auto_assign and (acc.conv_created or acc.reopened or acc.created):
        from switchboard.services.assignment import assign_pending

        assign_pending(uow, ch.organization_id, now=now)
    if commit:
        uow.commit()
    return IngestResult(acc.created, acc.duplicate, acc.applied, acc.st_ignored, acc.edits, acc.deletions,
                        acc.conv_created, acc.reopened, acc.ignored, tuple(acc.unmatched),
                        tuple(acc.conv_ids), tuple(acc.msg_ids))


def _lock_conversations(uow: UnitOfWork, channel_id: int, contact_ids: list[int]) -> dict[int, _ConvState]:
    if not contact_ids:
        return {}
    rows = uow.session.execute(_LOCK_CONVS, {"channel": channel_id, "ids": _json(contact_ids)})
    return {int(r.contact_id): _state(r) for r in rows}


def _ingest_messages(uow: UnitOfWork, org_id: int, channel_id: int, provider: str,
                     items: list[InboundMessage], now: datetime, acc: _Acc) -> None:
    uniq: dict[str, InboundMessage] = {}
    for m in items:
        if not m.provider_message_id:
            raise InvalidInput("an inbound message has no provider message id")
        if not m.contact.provider_contact_id:
            raise InvalidInput(f"message {m.provider_message_id} has no contact id")
        _check_aware(m.sent_at, f"message {m.provider_message_id}")
        if m.direction not in ("INBOUND", "OUTBOUND"):
            raise InvalidInput(f"message {m.provider_message_id}: direction {m.direction!r}")
        if m.provider_message_id in uniq:
            acc.duplicate += 1
        else:
            uniq[m.provider_message_id] = m
    # cheap pre-check: most redeliveries are whole duplicates; skip them before touching anything
    known = set(uow.session.execute(_KNOWN_MESSAGES, {"channel": channel_id, "ids": _json(list(uniq))}).scalars())
    if known:
        acc.duplicate += len(known)
        for k in known:
            uniq.pop(str(k), None)
    if not uniq:
        return
    fresh = list(uniq.values())
    sightings = merge_sightings((m.contact, m.sent_at) for m in fresh)
    contact_ids = upsert_contacts(uow, organization_id=org_id, provider=provider, sightings=sightings)

    by_contact: dict[int, list[InboundMessage]] = defaultdict(list)
    for m in fresh:
        by_contact[contact_ids[m.contact.provider_contact_id]].append(m)
    convs = _lock_conversations(uow, channel_id, sorted(by_contact))
    missing = sorted(set(by_contact) - set(convs))
    # a conversation created here is inserted with the state its messages give it (one write per row,
    # not an insert and an update); ``_new_conversation`` replays them exactly as for an existing one
    planned: dict[int, _ConvState] = {}
    if missing:
        for cid in missing:
            ms = sorted(by_contact[cid], key=_sent_at)
            planned[cid] = _replay(_new_conversation(0, org_id, ms), ms, None, [])
        rows = _json([(cid, _iso(c.created_at), c.status, c.unread_count, c.last_message_preview,
                       _iso(c.last_message_at), _iso(c.last_inbound_at), c.cycle_number,
                       _iso(c.cycle_started_at), _iso(c.first_response_at), c.awaiting_reply)
                      for cid, c in planned.items()])
        created = {int(r.contact_id): int(r.id) for r in uow.session.execute(_INSERT_CONVS, {
            "org": org_id, "channel": channel_id, "now": now, "rows": rows})}
        for cid, conv_id in created.items():
            convs[cid] = _new_conversation(conv_id, org_id, by_contact[cid])
        lost = [cid for cid in missing if cid not in created]  # another worker created it meanwhile
        convs.update(_lock_conversations(uow, channel_id, lost))

    # insert messages; duplicates that raced in since the pre-check are skipped by the unique key
    msg_rows = []
    for cid, ms in by_contact.items():
        conv_id = convs[cid].id
        for m in ms:
            inbound = m.direction == "INBOUND"
            msg_rows.append((conv_id, m.direction, "customer" if inbound else m.author_kind, m.body,
                             m.content_type or "text", m.provider_message_id, m.reply_to_provider_message_id,
                             "DELIVERED" if inbound else "SENT", m.raw or None, m.sent_at.isoformat()))
    new_ids = {str(r.provider_message_id): int(r.id) for r in uow.session.execute(_INSERT_MESSAGES, {
        "org": org_id, "channel": channel_id, "now": now, "rows": _json(msg_rows),
    })}
    acc.duplicate += len(msg_rows) - len(new_ids)
    acc.created += len(new_ids)
    acc.msg_ids.extend(new_ids.values())

    att_rows = [
        {"message_id": new_ids[m.provider_message_id], "kind": a.kind, "mime_type": a.mime_type,
         "file_name": a.file_name, "provider_media_id": a.provider_media_id, "url": a.url,
         "size_bytes": a.size_bytes, "sha256": a.sha256, "data": a.data}
        for m in fresh if m.attachments and m.provider_message_id in new_ids for a in m.attachments
    ]
    if att_rows:
        uow.session.execute(ATTACHMENTS.insert(), att_rows)

    events: list[NewEvent] = []
    changed: list[_ConvState] = []
    for cid, ms in by_contact.items():
        conv = convs[cid]
        new_ms = [m for m in ms if m.provider_message_id in new_ids]
        if len(new_ms) > 1:
            new_ms.sort(key=_sent_at)
        if conv.created:
            acc.conv_created += 1
            events.append(NewEvent(org_id, conv.id, "CREATED", conv.created_at or now, data={"contact_id": cid}))
            if len(new_ms) < len(ms):  # inserted with the state of all its messages: write the real one
                changed.append(conv)
        if not new_ms:
            continue
        _replay(conv, new_ms, new_ids, events)
        if not conv.created:
            changed.append(conv)
        acc.conv_ids.append(conv.id)
        acc.reopened += conv.reopened
    _write_conversations(uow, changed, now)
    append_events(uow, events)


def _new_conversation(conv_id: int, org_id: int, ms: list[InboundMessage]) -> _ConvState:
    """The state ``_INSERT_CONVS`` would give a new conversation before any of its messages is applied."""
    first = min(m.sent_at for m in ms)
    first_in = min((m.sent_at for m in ms if m.direction == "INBOUND"), default=None)
    return _ConvState(conv_id, org_id, "PENDING", None, 0, None, first, None, 1, first_in, None, False,
                      created=True, created_at=first)


def _replay(conv: _ConvState, ms: list[InboundMessage], ids: dict[str, int] | None,
            events: list[NewEvent]) -> _ConvState:
    """Apply messages (sorted by time) to a conversation state; ``ids`` None = planning, no message ids."""
    for m in ms:
        _apply_message(conv, m, ids[m.provider_message_id] if ids is not None else None, events)
    return conv


def _sent_at(m: InboundMessage) -> datetime:
    return m.sent_at


def _apply_message(conv: _ConvState, m: InboundMessage, mid: int | None, events: list[NewEvent]) -> None:
    at = m.sent_at
    if m.direction == "INBOUND":
        if conv.status == "COMPLETED":
            conv.status = "PENDING"
            conv.assigned_user_id = None
            conv.cycle_number += 1
            conv.cycle_started_at = at
            conv.first_response_at = None
            conv.reopened += 1
            events.append(NewEvent(conv.organization_id, conv.id, "REOPENED", at, message_id=mid,
                                   data={"cycle": conv.cycle_number, "by": "customer"}))
        if conv.cycle_started_at is None:
            conv.cycle_started_at = at
        events.append(NewEvent(conv.organization_id, conv.id, "MESSAGE_RECEIVED", at, message_id=mid,
                               data={"cycle": conv.cycle_number}))
        conv.unread_count += 1
        if conv.last_inbound_at is None or at >= conv.last_inbound_at:
            conv.last_inbound_at = at
            conv.awaiting_reply = True
    else:
        events.append(NewEvent(conv.organization_id, conv.id, "MESSAGE_SENT", at, message_id=mid,
                               data={"author_kind": m.author_kind, "echo": True, "cycle": conv.cycle_number}))
        if m.author_kind == "agent" and (conv.last_inbound_at is None or at >= conv.last_inbound_at):
            conv.awaiting_reply = False
            if conv.first_response_at is None and conv.cycle_started_at is not None \
                    and at >= conv.cycle_started_at:
                conv.first_response_at = at
    if conv.last_message_at is None or at >= conv.last_message_at or conv.last_message_preview is None:
        conv.last_message_at = max(at, conv.last_message_at or at)
        conv.last_message_preview = preview_of(m.body, m.content_type)


def _json(rows: Any) -> str:
    """One JSON document as the parameter of a batch: far cheaper to send than one array per column."""
    return json.dumps(rows, default=str, ensure_ascii=False, separators=(",", ":"))


_KNOWN_MESSAGES = text("""
    select provider_message_id from messages
    where channel_id = :channel
      and provider_message_id = any(array(select json_array_elements_text(cast(:ids as json))))
""")

_LOCK_CONVS = text(f"""
    select {", ".join(c.key for c in _CONV_COLS)} from conversations
    where channel_id = :channel
      and contact_id = any(array(select cast(json_array_elements_text(cast(:ids as json)) as bigint)))
    order by id
    for update
""")  # noqa: S608 - column names are constants

_INSERT_CONVS = text("""
    insert into conversations (organization_id, channel_id, contact_id, status, created_at, updated_at,
                               unread_count, last_message_preview, last_message_at, last_inbound_at,
                               cycle_number, cycle_started_at, first_response_at, awaiting_reply)
    select :org, :channel, cast(r->>0 as bigint), r->>2, cast(r->>1 as timestamptz), :now,
           cast(r->>3 as int), r->>4, cast(r->>5 as timestamptz), cast(r->>6 as timestamptz),
           cast(r->>7 as int), cast(r->>8 as timestamptz), cast(r->>9 as timestamptz), cast(r->>10 as boolean)
    from json_array_elements(cast(:rows as json)) as r
    on conflict (channel_id, contact_id) do nothing
    returning id, contact_id
""")

_INSERT_MESSAGES = text("""
    insert into messages (organization_id, conversation_id, channel_id, direction, author_kind, body,
                          content_type, provider_message_id, reply_to_provider_message_id, status, raw,
                          sent_at, status_updated_at, created_at)
    select :org, cast(r->>0 as bigint), :channel, r->>1, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7,
           case when json_typeof(r->8) = 'null' then null else cast(r->8 as jsonb) end,
           cast(r->>9 as timestamptz), cast(r->>9 as timestamptz), :now
    from json_array_elements(cast(:rows as json)) as r
    on conflict (channel_id, provider_message_id) do nothing
    returning id, provider_message_id
""")

_UPDATE_CONVS = text("""
    update conversations as c set
        status = v.status,
        assigned_user_id = case when v.status = 'ASSIGNED' then c.assigned_user_id end,
        unread_count = v.unread_count,
        last_message_preview = v.preview,
        last_message_at = v.last_message_at,
        last_inbound_at = v.last_inbound_at,
        cycle_number = v.cycle_number,
        cycle_started_at = v.cycle_started_at,
        first_response_at = v.first_response_at,
        awaiting_reply = v.awaiting_reply,
        updated_at = :now
    from (select cast(r->>0 as bigint) as id, r->>1 as status, cast(r->>2 as int) as unread_count,
                 r->>3 as preview, cast(r->>4 as timestamptz) as last_message_at,
                 cast(r->>5 as timestamptz) as last_inbound_at, cast(r->>6 as int) as cycle_number,
                 cast(r->>7 as timestamptz) as cycle_started_at, cast(r->>8 as timestamptz) as first_response_at,
                 cast(r->>9 as boolean) as awaiting_reply
          from json_array_elements(cast(:rows as json)) as r) as v
    where c.id = v.id
""")


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _write_conversations(uow: UnitOfWork, convs: list[_ConvState], now: datetime) -> None:
    if not convs:
        return
    uow.session.execute(_UPDATE_CONVS, {"now": now, "rows": _json([
        (c.id, c.status, c.unread_count, c.last_message_preview, _iso(c.last_message_at),
         _iso(c.last_inbound_at), c.cycle_number, _iso(c.cycle_started_at), _iso(c.first_response_at),
         c.awaiting_reply)
        for c in convs
    ])})


_UPDATE_STATUSES = text("""
    update messages as m set
        status = v.status,
        status_updated_at = v.at,
        delivered_at = v.delivered_at,
        read_at = v.read_at,
        error_code = coalesce(v.error_code, m.error_code),
        error_message = coalesce(v.error_message, m.error_message)
    from unnest(cast(:ids as bigint[]), cast(:status as text[]), cast(:at as timestamptz[]),
                cast(:delivered as timestamptz[]), cast(:read as timestamptz[]),
                cast(:code as text[]), cast(:msg as text[]))
         as v(id, status, at, delivered_at, read_at, error_code, error_message)
    where m.id = v.id
""")


def _apply_statuses(uow: UnitOfWork, channel_id: int, statuses: list[StatusUpdate], acc: _Acc) -> None:
    for s in statuses:
        _check_aware(s.occurred_at, f"status of {s.provider_message_id}")
        if s.status not in STATUS_EVENT:
            raise InvalidInput(f"status {s.status!r} of {s.provider_message_id} is not one of "
                               f"{', '.join(STATUS_EVENT)}")
    ids = sorted({s.provider_message_id for s in statuses})
    rows = {
        str(r.provider_message_id): r
        for r in uow.session.execute(
            select(Message.id, Message.organization_id, Message.conversation_id, Message.direction,
                   Message.provider_message_id, Message.status, Message.delivered_at, Message.read_at,
                   Message.author_user_id)
            .where(Message.channel_id == channel_id, Message.provider_message_id.in_(ids))
            .order_by(Message.id)
            .with_for_update()
        )
    }
    ordered = sorted(statuses, key=lambda s: (s.occurred_at, STATUS_RANK.get(s.status, 9)))
    state: dict[str, dict[str, Any]] = {}
    events: list[NewEvent] = []
    for s in ordered:
        row = rows.get(s.provider_message_id)
        if row is None or row.direction != "OUTBOUND":
            acc.st_ignored += 1
            if row is None and s.provider_message_id not in acc.unmatched:
                acc.unmatched.append(s.provider_message_id)
            continue
        st = state.setdefault(s.provider_message_id, {
            "id": row.id, "status": row.status, "at": None, "delivered": row.delivered_at,
            "read": row.read_at, "code": None, "msg": None, "changed": False,
        })
        if not can_advance(st["status"], s.status):
            acc.st_ignored += 1
            continue
        st["status"] = s.status
        st["at"] = s.occurred_at
        st["changed"] = True
        if s.status in ("DELIVERED", "READ") and st["delivered"] is None:
            st["delivered"] = s.occurred_at
        if s.status == "READ" and st["read"] is None:
            st["read"] = s.occurred_at
        data: dict[str, Any] = {}
        if s.status == "FAILED":
            st["code"] = s.error_code
            st["msg"] = s.error_message or "the platform reported the message as failed"
            data = {"error_code": s.error_code, "error_message": st["msg"]}
        acc.applied += 1
        events.append(NewEvent(row.organization_id, row.conversation_id, STATUS_EVENT[s.status],
                               s.occurred_at, message_id=row.id, data=data))
    upd = [v for v in state.values() if v["changed"]]
    if upd:
        uow.session.execute(_UPDATE_STATUSES, {
            "ids": [v["id"] for v in upd], "status": [v["status"] for v in upd],
            "at": [v["at"] for v in upd], "delivered": [v["delivered"] for v in upd],
            "read": [v["read"] for v in upd], "code": [v["code"] for v in upd],
            "msg": [v["msg"] for v in upd],
        })
    append_events(uow, events)


def _apply_watermark(uow: UnitOfWork, org_id: int, channel_id: int, provider: str, mark: ReadWatermark,
                     acc: _Acc) -> None:
    _check_aware(mark.watermark, "read watermark")
    _check_aware(mark.occurred_at, "read watermark")
    lower = ["SENT"] if mark.status == "DELIVERED" else ["SENT", "DELIVERED"]
    conv = uow.session.execute(
        select(Conversation.id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.channel_id == channel_id, Contact.organization_id == org_id,
               Contact.provider == provider, Contact.provider_contact_id == mark.provider_contact_id)
    ).scalar()
    if conv is None:
        acc.st_ignored += 1
        return
    rows = uow.session.execute(
        select(Message.id).where(
            Message.conversation_id == conv, Message.direction == "OUTBOUND",
            Message.sent_at <= mark.watermark, Message.status.in_(lower),
        ).order_by(Message.id).with_for_update()
    ).scalars().all()
    if not rows:
        return
    values: dict[str, Any] = {"status": mark.status, "status_updated_at": mark.occurred_at,
                              "delivered_at": func.coalesce(MESSAGES.c.delivered_at, mark.occurred_at)}
    if mark.status == "READ":
        values["read_at"] = func.coalesce(MESSAGES.c.read_at, mark.occurred_at)
    uow.session.execute(update(MESSAGES).where(MESSAGES.c.id.in_(list(rows))).values(**values))
    acc.applied += len(rows)
    append_events(uow, [NewEvent(org_id, int(conv), STATUS_EVENT[mark.status], mark.occurred_at,
                                 message_id=int(mid), data={"watermark": mark.watermark.isoformat()})
                        for mid in rows])


def _touch_preview(uow: UnitOfWork, message_id: int, conversation_id: int, sent_at: datetime,
                   preview: str) -> None:
    uow.session.execute(
        update(CONVERSATIONS)
        .where(and_(CONVERSATIONS.c.id == conversation_id, CONVERSATIONS.c.last_message_at == sent_at))
        .values(last_message_preview=preview)
    )


def _apply_edit(uow: UnitOfWork, channel_id: int, e: MessageEdit, acc: _Acc) -> None:
    row = uow.session.execute(
        update(MESSAGES)
        .where(MESSAGES.c.channel_id == channel_id, MESSAGES.c.provider_message_id == e.provider_message_id)
        .values(body=e.new_body, is_edited=True,
                raw=_merge_raw({"edit": {"edited_at": e.edited_at.isoformat(), "raw": e.raw}}))
        .returning(MESSAGES.c.id, MESSAGES.c.conversation_id, MESSAGES.c.sent_at, MESSAGES.c.content_type)
    ).first()
    if row is None:
        acc.ignored += 1
        return
    acc.edits += 1
    _touch_preview(uow, row.id, row.conversation_id, row.sent_at, preview_of(e.new_body, row.content_type))


def _apply_deletion(uow: UnitOfWork, channel_id: int, d: MessageDeletion, acc: _Acc) -> None:
    row = uow.session.execute(
        update(MESSAGES)
        .where(MESSAGES.c.channel_id == channel_id, MESSAGES.c.provider_message_id == d.provider_message_id)
        .values(is_deleted=True,
                raw=_merge_raw({"deletion": {"deleted_at": d.deleted_at.isoformat(), "raw": d.raw}}))
        .returning(MESSAGES.c.id, MESSAGES.c.conversation_id, MESSAGES.c.sent_at)
    ).first()
    if row is None:
        acc.ignored += 1
        return
    acc.deletions += 1
    _touch_preview(uow, row.id, row.conversation_id, row.sent_at, "[message deleted]")


def _merge_raw(extra: dict[str, Any]) -> Any:
    """``raw = coalesce(raw, '{}') || extra``: the original payload is kept, the change appended."""
    return func.coalesce(MESSAGES.c.raw, literal({}, JSONB)).op("||")(literal(extra, JSONB))
