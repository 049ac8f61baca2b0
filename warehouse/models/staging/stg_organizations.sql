-- Organizations with their timezone (UTC when unset) and SLA targets, renamed and cast.
select
    id::bigint as organization_id,
    name as organization_name,
    coalesce(timezone, 'UTC') as timezone,
    business_hours as business_hours_json,
    sla_first_response_ms::bigint as sla_first_response_ms,
    sla_resolution_ms::bigint as sla_resolution_ms,
    created_at
from {{ source('raw_organizations') }}
