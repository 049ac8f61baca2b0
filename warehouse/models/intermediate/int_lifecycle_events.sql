-- Lifecycle events (not message events) with the cycle each belongs to, the agent an assignment
-- event hands the conversation to, and the local time in the organization's timezone.
-- A cycle ends at COMPLETED: cycle_number = 1 + COMPLETED events strictly before this one.
with events as (
    select * from {{ ref('stg_conversation_events') }}
),

conversations as (
    select conversation_id, channel_id from {{ ref('stg_conversations') }}
),

organizations as (
    select organization_id, timezone from {{ ref('stg_organizations') }}
),

with_cycle as (
    select
        *,
        1 + coalesce(sum(case when event_type = 'COMPLETED' then 1 else 0 end) over (
            partition by conversation_id order by occurred_at, event_id
            rows between unbounded preceding and 1 preceding
        ), 0) as cycle_number
    from events
),

final as (
    select
        e.event_id,
        e.organization_id,
        e.conversation_id,
        c.channel_id,
        e.cycle_number,
        e.event_type,
        e.actor_user_id,
        case
            when e.event_type = 'ACCEPTED' then e.actor_user_id
            when e.event_type = 'REASSIGNED' then coalesce(
                try_cast(json_extract_string(e.data_json, '$.to_user_id') as bigint),
                try_cast(json_extract_string(e.data_json, '$.assigned_user_id') as bigint),
                try_cast(json_extract_string(e.data_json, '$.to') as bigint)
            )
        end as assignee_user_id,
        e.message_id,
        e.occurred_at,
        {{ local_time('e.occurred_at', 'tz') }} as occurred_local_at
    from with_cycle as e
    left join conversations as c on c.conversation_id = e.conversation_id
    left join organizations as o on o.organization_id = e.organization_id
    {{ utc_offset_join('tz', 'e.occurred_at', 'o.timezone') }}
)

-- stored in conversation order: incremental builds find a conversation's rows by zone map
select * from final order by conversation_id
