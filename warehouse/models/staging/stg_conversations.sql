-- Conversations as they are now (current cycle, assignee, unread count), renamed and cast.
select
    id::bigint as conversation_id,
    organization_id::bigint as organization_id,
    channel_id::bigint as channel_id,
    status as conversation_status,
    assigned_user_id::bigint as assigned_user_id,
    unread_count::bigint as count_unread,
    last_message_at,
    cycle_number::bigint as current_cycle_number,
    cycle_started_at
from {{ source('raw_conversations') }}
