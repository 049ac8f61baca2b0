-- Messages (bodies are not extracted: only their length), renamed and cast.
select
    id::bigint as message_id,
    organization_id::bigint as organization_id,
    conversation_id::bigint as conversation_id,
    channel_id::bigint as channel_id,
    direction,
    author_kind,
    author_user_id::bigint as author_user_id,
    body_length_chars::bigint as body_length_chars,
    status as message_status,
    is_deleted,
    sent_at
from {{ source('raw_messages') }}
