with source as (
    select * from {{ source('raw_users') }}
),

renamed as (
    select
        id::bigint as user_id,
        organization_id::bigint as organization_id,
        lower(email) as user_email,
        name as user_name,
        role as user_role,
        status as user_status,
        created_at
    from source
),

final as (select * from renamed)

select * from final
