-- Conversations as they are now (current cycle, assignee, unread count), renamed and cast.
select
    id::bigint as conversation_id,
    organization_id::bigint as organization_id,
    channel_id::bigint as channel_id,
    contact_id::bigint as contact_id,
    status as conversation_status,
    assigned_user_id::bigint as assigned_user_id,
    unread_count::bigint as count_unread,
    last_message_at,
    last_inbound_at,
    cycle_number::bigint as current_cycle_number,
    cycle_started_at,
    first_response_at as current_first_response_at,
    awaiting_reply as is_awaiting_reply,
    created_at,
    updated_at
from {{ source('raw_conversations') }}
