-- Channels, renamed and cast (staging models only rename and cast).
select
    id::bigint as channel_id,
    organization_id::bigint as organization_id,
    key as channel_key,
    provider,
    name as channel_name,
    status as channel_status,
    business_hours as business_hours_override_json,
    created_at
from {{ source('raw_channels') }}
