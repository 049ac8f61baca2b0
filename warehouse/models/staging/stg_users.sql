-- Users with lower-cased emails, renamed and cast.
select
    id::bigint as user_id,
    organization_id::bigint as organization_id,
    lower(email) as user_email,
    name as user_name,
    role as user_role,
    status as user_status,
    created_at
from {{ source('raw_users') }}
