with source as (
    select * from {{ source('raw_presence_events') }}
),

renamed as (
    select
        id::bigint as presence_event_id,
        organization_id::bigint as organization_id,
        user_id::bigint as user_id,
        state as presence_state,
        occurred_at
    from source
),

final as (select * from renamed)

select * from final
