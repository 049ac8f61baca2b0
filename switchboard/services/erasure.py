"""Erase a contact (a privacy request): what goes, what stays, and the tombstones that keep it gone.

What :func:`erase_contact` does, in the caller's transaction (admin only, audited):

* every message of the contact's conversations (both directions: agents' replies quote customers
  too) loses its body, raw payload, template parameters and reply reference; its provider message id
  becomes ``erased:<keyed hash>``; its attachments are deleted (the files no other attachment uses are
  returned, for the entrypoint to delete after its commit: :func:`remove_files`);
* the contact keeps its row under a stable pseudonym (``erased:<keyed hash>`` as provider contact id,
  "Erased contact …" as name; username, phone, metadata cleared);
* its conversations stay as anonymous shells (status, times, cycles and events intact, no preview),
  so the metrics stay correct; a ``MESSAGE_ERASED`` event per message makes the next incremental
  warehouse build re-extract the erased rows;
* its queued read marks / typing indicators and the processed webhook deliveries that mention its
  provider contact id are deleted; outgoing event webhook deliveries lose the message text; a
  Telegram chat's sync cursor forgets the chat's title;
* tombstones keep only keyed hashes (HMAC-SHA256 with the organization's ``erasure_key``):
  ``erased_messages`` (channel, message id) and ``erased_contacts`` (provider, contact id, when).

Ingest consults the tombstones (:func:`drop_erased`): a replayed delivery or a history sync never
stores an erased message again (its id is tombstoned), nor any message of the erased sender sent
before the erasure. A message the person sends *after* the erasure is new: it makes a new contact
(they wrote again).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from switchboard import storage
from switchboard.auth.audit import record_audit
from switchboard.clock import utcnow
from switchboard.errors import NotFound
from switchboard.jsonrows import to_json
from switchboard.policy import Action, require
from switchboard.services.retention import affected
from switchboard.types import Actor, InboundMessage
from switchboard.uow import UnitOfWork

PREFIX = "erased:"
# shorter provider contact ids would match unrelated deliveries: those are left to the cleanup flow
MIN_DELIVERY_NEEDLE = 5
AUDIT_ACTION = "contact.erased"


@dataclass(frozen=True, slots=True)
class ErasureReport:
    contact_id: int
    pseudonym: str  # the contact's display name from now on
    conversations: int
    messages: int
    attachments: int
    deliveries: int  # processed webhook deliveries deleted
    files: tuple[str, ...]  # media files no attachment uses any more: delete them after the commit
    already_erased: bool = False


def keyed_hash(key: str, provider: str, value: str) -> str:
    """HMAC-SHA256 of ``provider:value`` under the organization's erasure key (hex)."""
    return hmac.new(key.encode(), f"{provider}:{value}".encode(), hashlib.sha256).hexdigest()


def _key(uow: UnitOfWork, organization_id: int) -> str:
    return str(uow.session.execute(text("select erasure_key from organizations where id = :org"),
                                   {"org": organization_id}).scalar_one())


_CONTACT = text("""
    select id, provider, provider_contact_id, display_name, metadata from contacts
    where id = :id and organization_id = :org for update
""")
_MESSAGES = text("""
    select m.id, m.channel_id, m.conversation_id, m.provider_message_id from messages m
    join conversations c on c.id = m.conversation_id
    where c.contact_id = :contact and c.organization_id = :org
    order by m.id
""")
_ATTACHMENTS = text("delete from attachments where message_id = any(:ids) returning local_path")
_STILL_USED = text("select distinct local_path from attachments where local_path = any(:paths)")
_ERASE_MESSAGES = text("""
    update messages m set body = null, raw = null, template = null, reply_to_provider_message_id = null,
           provider_message_id = r.pmid,
           -- a reply still waiting in the outbox is never sent (its text is gone)
           status = case when m.status = 'PENDING' then 'FAILED' else m.status end,
           error_code = case when m.status = 'PENDING' then 'erased' else m.error_code end
    from json_to_recordset(cast(:rows as json)) as r(id bigint, pmid text)
    where m.id = r.id
""")
_MESSAGE_TOMBSTONES = text("""
    insert into erased_messages (channel_id, message_hash, erased_at)
    select r.channel, r.hash, :now from json_to_recordset(cast(:rows as json)) as r(channel bigint, hash text)
    on conflict do nothing
""")
_EVENTS = text("""
    insert into conversation_events (organization_id, conversation_id, type, actor_user_id, message_id,
                                     data, occurred_at)
    select :org, m.conversation_id, 'MESSAGE_ERASED', :actor, m.id, '{}'::jsonb, :now
    from messages m where m.id = any(:ids)
""")
_CONVERSATIONS = text("""
    update conversations set last_message_preview = null, updated_at = :now
    where contact_id = :contact and organization_id = :org
""")
_SIGNALS = text("""
    delete from platform_signals where conversation_id in (select id from conversations where contact_id = :contact)
""")
# deliveries still to process are left to ingest (which drops the erased sender's old messages)
_DELIVERIES = text("""
    delete from webhook_events w using channels c
    where c.id = w.channel_id and c.organization_id = :org and c.provider = :provider
      and w.status <> 'RECEIVED' and position(:needle in w.body) > 0
""")
# outgoing event webhooks carry the message text in their payload: emptied (the event itself is kept)
_EVENT_PAYLOADS = text("""
    update event_deliveries set payload = jsonb_set(payload, '{data,message,text}', 'null'::jsonb)
    where organization_id = :org and payload #>> '{data,message,id}' = any(:ids)
""")
# a Telegram chat's sync cursor keeps the chat's title (the person's name): cleared, the cursor kept
_CURSOR_TITLES = text("""
    update sync_cursors s set cursor = (cast(s.cursor as jsonb) || '{"title": null}'::jsonb)::text
    from channels c
    where c.id = s.channel_id and c.organization_id = :org and c.provider = :provider
      and s.scope = 'chat:' || :pcid and s.cursor like '{%'
""")
_CONTACT_TOMBSTONE = text("""
    insert into erased_contacts (organization_id, provider, contact_hash, erased_at)
    values (:org, :provider, :hash, :now)
    on conflict (organization_id, provider, contact_hash) do update set erased_at = excluded.erased_at
""")
_ANONYMISE = text("""
    update contacts set provider_contact_id = :pseudonym, display_name = :name, username = null, phone = null,
           lead_stage = null, metadata = cast(:metadata as jsonb)
    where id = :id
""")


def erase_contact(uow: UnitOfWork, actor: Actor, contact_id: int, *, now: datetime | None = None) -> ErasureReport:
    """Admin: erase a contact's personal data (see the module docstring); audited, never commits.
    Erasing an erased contact again changes nothing."""
    me = require(uow, actor, Action.ERASE_CONTACTS)
    now = now or utcnow()
    org = me.organization_id
    row = uow.session.execute(_CONTACT, {"id": contact_id, "org": org}).first()
    if row is None:
        raise NotFound(f"contact {contact_id} not found in your organization")
    key = _key(uow, org)
    provider, pcid = str(row.provider), str(row.provider_contact_id)
    contact_hash = keyed_hash(key, provider, pcid)
    name = f"Erased contact {contact_hash[:8]}"
    if (row.metadata or {}).get("erased_at"):
        return ErasureReport(contact_id, str(row.display_name), 0, 0, 0, 0, (), already_erased=True)

    messages = uow.session.execute(_MESSAGES, {"contact": contact_id, "org": org}).all()
    ids = [int(m.id) for m in messages]
    tombstones = [{"id": int(m.id), "channel": int(m.channel_id),
                   "hash": keyed_hash(key, provider, str(m.provider_message_id))}
                  for m in messages if m.provider_message_id is not None]
    removed = [p for p in uow.session.execute(_ATTACHMENTS, {"ids": ids}).scalars() if p]
    used = set(uow.session.execute(_STILL_USED, {"paths": removed}).scalars()) if removed else set()
    uow.session.execute(_MESSAGE_TOMBSTONES, {"now": now, "rows": to_json(tombstones)})
    pmids = {t["id"]: PREFIX + str(t["hash"]) for t in tombstones}
    uow.session.execute(_ERASE_MESSAGES, {"rows": to_json([{"id": i, "pmid": pmids.get(i)} for i in ids])})
    uow.session.execute(_EVENTS, {"org": org, "actor": me.acting_user_id, "ids": ids, "now": now})
    conversations = affected(uow, _CONVERSATIONS, {"contact": contact_id, "org": org, "now": now})
    uow.session.execute(_SIGNALS, {"contact": contact_id})
    deliveries = (affected(uow, _DELIVERIES, {"org": org, "provider": provider, "needle": pcid.encode()})
                  if len(pcid) >= MIN_DELIVERY_NEEDLE else 0)
    uow.session.execute(_EVENT_PAYLOADS, {"org": org, "ids": [str(i) for i in ids]})
    uow.session.execute(_CURSOR_TITLES, {"org": org, "provider": provider, "pcid": pcid})
    uow.session.execute(_CONTACT_TOMBSTONE, {"org": org, "provider": provider, "hash": contact_hash, "now": now})
    uow.session.execute(_ANONYMISE, {"id": contact_id, "pseudonym": PREFIX + contact_hash, "name": name,
                                     "metadata": to_json({"erased_at": now.isoformat()})})
    report = ErasureReport(contact_id, name, conversations, len(ids), len(removed), deliveries,
                           tuple(sorted({p for p in removed if p not in used})))
    record_audit(uow, organization_id=org, actor_user_id=me.acting_user_id, action=AUDIT_ACTION,
                 target=f"contact {contact_id}", now=now,
                 details={"conversations": report.conversations, "messages": report.messages,
                          "attachments": report.attachments, "deliveries": report.deliveries,
                          "files": len(report.files)})
    return report


def remove_files(paths: Iterable[str]) -> int:
    """Delete the media files an erasure released (after its commit); how many it deleted."""
    return sum(1 for p in paths if storage.remove_file(Path(p)) > 0)


_TOMBSTONED = text("""
    select 'm' as kind, message_hash as hash, null::timestamptz as erased_at from erased_messages
    where channel_id = :channel and message_hash = any(:messages)
    union all
    select 'c', contact_hash, erased_at from erased_contacts
    where organization_id = :org and provider = :provider and contact_hash = any(:contacts)
""")
_ANY_TOMBSTONE = text("""
    select o.erasure_key,
           exists (select 1 from erased_contacts e where e.organization_id = o.id and e.provider = :provider)
           or exists (select 1 from erased_messages e where e.channel_id = :channel) as any
    from organizations o where o.id = :org
""")


def drop_erased(uow: UnitOfWork, *, organization_id: int, channel_id: int, provider: str,
                messages: Sequence[InboundMessage]) -> list[InboundMessage]:
    """The messages ingest may store: not an erased message, and not an erased sender's message sent
    before their erasure (module docstring). One cheap query when nothing was ever erased."""
    if not messages:
        return []
    head: Any = uow.session.execute(_ANY_TOMBSTONE, {"org": organization_id, "channel": channel_id,
                                                      "provider": provider}).first()
    if head is None or not head.any:
        return list(messages)
    key = str(head.erasure_key)
    m_hash = {m.provider_message_id: keyed_hash(key, provider, m.provider_message_id) for m in messages}
    c_hash = {m.contact.provider_contact_id: keyed_hash(key, provider, m.contact.provider_contact_id)
              for m in messages}
    found = uow.session.execute(_TOMBSTONED, {"channel": channel_id, "org": organization_id, "provider": provider,
                                              "messages": sorted(set(m_hash.values())),
                                              "contacts": sorted(set(c_hash.values()))}).all()
    gone_messages = {r.hash for r in found if r.kind == "m"}
    erased_at = {r.hash: r.erased_at for r in found if r.kind == "c"}
    return [m for m in messages
            if m_hash[m.provider_message_id] not in gone_messages
            and not (c_hash[m.contact.provider_contact_id] in erased_at
                     and m.sent_at <= erased_at[c_hash[m.contact.provider_contact_id]])]
