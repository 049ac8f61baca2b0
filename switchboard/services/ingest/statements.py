"""The SQL of ingest: one statement per table per batch.

A batch travels as ONE JSON document (far cheaper to send than one array per column) whose rows are
objects with named fields, read with ``json_to_recordset(...) as r(<name> <type>, ...)``: a field is
found by its name, never by its position, and each statement says the type of every field it reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import text

from switchboard.jsonrows import to_json


def rows_json(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows of a batch as the JSON parameter ``:rows``."""
    return to_json(list(rows))


def ids_json(ids: Iterable[Any]) -> str:
    return to_json(list(ids))


# provider message ids of a channel already stored (most redeliveries are whole duplicates)
KNOWN_MESSAGES = text("""
    select provider_message_id from messages
    where channel_id = :channel
      and provider_message_id = any(array(select json_array_elements_text(cast(:ids as json))))
""")

# the contact whose conversation holds each of these messages of the channel (threads: email replies)
THREAD_CONTACTS = text("""
    select m.provider_message_id, c.contact_id from messages m join conversations c on c.id = m.conversation_id
    where m.channel_id = :channel
      and m.provider_message_id = any(array(select json_array_elements_text(cast(:ids as json))))
""")

# the conversations of these contacts on the channel, locked in id order (no deadlock between workers)
LOCK_CONVERSATIONS = text("""
    select id, organization_id, contact_id, status, assigned_user_id, unread_count, last_message_preview,
           last_message_at, last_inbound_at, cycle_number, cycle_started_at, first_response_at,
           awaiting_reply
    from conversations
    where channel_id = :channel
      and contact_id = any(array(select cast(json_array_elements_text(cast(:ids as json)) as bigint)))
    order by id
    for update
""")

# new conversations, inserted with the state their messages give them; a row another worker inserted
# meanwhile is skipped (the caller locks and replays onto it)
INSERT_CONVERSATIONS = text("""
    insert into conversations (organization_id, channel_id, contact_id, status, created_at, updated_at,
                               unread_count, last_message_preview, last_message_at, last_inbound_at,
                               cycle_number, cycle_started_at, first_response_at, awaiting_reply)
    select :org, :channel, r.contact_id, r.status, r.created_at, :now, r.unread_count, r.preview,
           r.last_message_at, r.last_inbound_at, r.cycle_number, r.cycle_started_at, r.first_response_at,
           r.awaiting_reply
    from json_to_recordset(cast(:rows as json)) as r(
        contact_id bigint, created_at timestamptz, status text, unread_count int, preview text,
        last_message_at timestamptz, last_inbound_at timestamptz, cycle_number int,
        cycle_started_at timestamptz, first_response_at timestamptz, awaiting_reply boolean)
    order by r.contact_id
    on conflict (channel_id, contact_id) do nothing
    returning id, contact_id
""")

# the state replayed onto existing conversations (locked by LOCK_CONVERSATIONS)
UPDATE_CONVERSATIONS = text("""
    update conversations as c
    set (status, assigned_user_id, unread_count, last_message_preview, last_message_at, last_inbound_at,
         cycle_number, cycle_started_at, first_response_at, awaiting_reply, updated_at)
      = (r.status, case when r.status = 'ASSIGNED' then c.assigned_user_id end, r.unread_count, r.preview,
         r.last_message_at, r.last_inbound_at, r.cycle_number, r.cycle_started_at, r.first_response_at,
         r.awaiting_reply, :now)
    from json_to_recordset(cast(:rows as json)) as r(
        id bigint, status text, unread_count int, preview text, last_message_at timestamptz,
        last_inbound_at timestamptz, cycle_number int, cycle_started_at timestamptz,
        first_response_at timestamptz, awaiting_reply boolean)
    where c.id = r.id
""")

_INSERT_MESSAGES = """
    insert into messages (organization_id, conversation_id, channel_id, direction, author_kind, body,
                          content_type, provider_message_id, reply_to_provider_message_id, status, raw,
                          sent_at, status_updated_at, created_at)
    select :org, r.conversation_id, :channel, r.direction, r.author_kind, r.body, r.content_type,
           r.provider_message_id, r.reply_to, r.status, r.raw, r.sent_at, r.sent_at, :now
    from json_to_recordset(cast(:rows as json)) as r(
        conversation_id bigint, direction text, author_kind text, body text, content_type text,
        provider_message_id text, reply_to text, status text, raw jsonb, sent_at timestamptz)
    {conflict}returning id, provider_message_id
"""
# messages; a duplicate that raced in since KNOWN_MESSAGES is skipped by the unique key
INSERT_MESSAGES = text(_INSERT_MESSAGES.format(conflict="on conflict (channel_id, provider_message_id) do nothing\n    "))
# the same without ON CONFLICT (no speculative insertion per row): a duplicate fails the statement
INSERT_MESSAGES_PLAIN = text(_INSERT_MESSAGES.format(conflict=""))

INSERT_ATTACHMENTS = text("""
    insert into attachments (message_id, kind, mime_type, file_name, provider_media_id, url, size_bytes,
                             sha256, data)
    select r.message_id, r.kind, r.mime_type, r.file_name, r.provider_media_id, r.url, r.size_bytes,
           r.sha256, coalesce(r.data, '{}')
    from json_to_recordset(cast(:rows as json)) as r(
        message_id bigint, kind text, mime_type text, file_name text, provider_media_id text, url text,
        size_bytes bigint, sha256 text, data jsonb)
""")

# the messages statuses refer to, locked in id order
LOCK_STATUS_TARGETS = text("""
    select id, organization_id, conversation_id, direction, provider_message_id, status, delivered_at,
           read_at
    from messages
    where channel_id = :channel
      and provider_message_id = any(array(select json_array_elements_text(cast(:ids as json))))
    order by id
    for update
""")

UPDATE_STATUSES = text("""
    update messages as m
    set (status, status_updated_at, delivered_at, read_at, error_code, error_message)
      = (r.status, r.at, r.delivered_at, r.read_at, coalesce(r.error_code, m.error_code),
         coalesce(r.error_message, m.error_message))
    from json_to_recordset(cast(:rows as json)) as r(
        id bigint, status text, at timestamptz, delivered_at timestamptz, read_at timestamptz,
        error_code text, error_message text)
    where m.id = r.id
""")

# the outbound messages a read/delivery watermark covers, locked in id order
WATERMARK_TARGETS = text("""
    select id from messages
    where conversation_id = :conversation and direction = 'OUTBOUND' and sent_at <= :watermark
      and status = any(cast(:lower as text[]))
    order by id
    for update
""")

WATERMARK_CONVERSATION = text("""
    select c.id from conversations c join contacts k on k.id = c.contact_id
    where c.channel_id = :channel and k.organization_id = :org and k.provider = :provider
      and k.provider_contact_id = :contact
""")

APPLY_WATERMARK = text("""
    update messages set status = cast(:status as text), status_updated_at = :at,
                        delivered_at = coalesce(delivered_at, :at),
                        read_at = case when cast(:status as text) = 'READ' then coalesce(read_at, :at)
                                       else read_at end
    where id = any(cast(:ids as bigint[]))
""")

# an edit or a deletion: the original payload is kept in ``raw``, the change appended under a key
EDIT_MESSAGE = text("""
    update messages set body = :body, is_edited = true,
                        raw = coalesce(raw, '{}'::jsonb) || cast(:extra as jsonb)
    where channel_id = :channel and provider_message_id = :pmid
    returning id, conversation_id, sent_at, content_type
""")

DELETE_MESSAGE = text("""
    update messages set is_deleted = true, raw = coalesce(raw, '{}'::jsonb) || cast(:extra as jsonb)
    where channel_id = :channel and provider_message_id = :pmid
    returning id, conversation_id, sent_at, content_type
""")

# the preview follows an edit/deletion of the conversation's latest message only
TOUCH_PREVIEW = text("""
    update conversations set last_message_preview = :preview
    where id = :conversation and last_message_at = :sent_at
""")

UPSERT_CURSOR = text("""
    insert into sync_cursors (channel_id, scope, cursor, updated_at) values (:channel, :scope, :cursor, :now)
    on conflict (channel_id, scope) do update set cursor = excluded.cursor, updated_at = excluded.updated_at
""")

CHANNEL = text("""
    select c.id, c.organization_id, c.provider, o.auto_assign
    from channels c join organizations o on o.id = c.organization_id
    where c.id = :channel
""")
