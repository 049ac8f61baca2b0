-- Presence events (state changes and per-minute heartbeats), renamed and cast.
select
    id::bigint as presence_event_id,
    organization_id::bigint as organization_id,
    user_id::bigint as user_id,
    state as presence_state,
    occurred_at
from {{ source('raw_presence_events') }}
