-- Lifecycle events (the extract keeps only lifecycle types), renamed and cast.
select
    id::bigint as event_id,
    organization_id::bigint as organization_id,
    conversation_id::bigint as conversation_id,
    type as event_type,
    actor_user_id::bigint as actor_user_id,
    message_id::bigint as message_id,
    data as data_json,
    occurred_at
from {{ source('raw_conversation_events') }}
