-- One row per assignment: an agent holding a conversation from ACCEPTED (or REASSIGNED to them)
-- until the next RELEASED, REASSIGNED, AGENT_DISCONNECTED, COMPLETED or ACCEPTED.
with events as (
    select * from {{ ref('int_lifecycle_events') }}
    where event_type in ('ACCEPTED', 'REASSIGNED', 'RELEASED', 'AGENT_DISCONNECTED', 'COMPLETED')
),

ordered as (
    select
        *,
        lead(occurred_at) over w as next_occurred_at,
        lead(occurred_local_at) over w as next_occurred_local_at,
        lead(event_type) over w as next_event_type,
        lead(actor_user_id) over w as next_actor_user_id
    from events
    window w as (partition by conversation_id order by occurred_at, event_id)
),

final as (
    select
        event_id as assignment_id,
        organization_id,
        conversation_id,
        channel_id,
        cycle_number,
        assignee_user_id as user_id,
        event_type as start_event_type,
        occurred_at as assigned_at,
        occurred_local_at as assigned_local_at,
        next_occurred_at as ended_at,
        next_occurred_local_at as ended_local_at,
        next_event_type as end_event_type,
        next_actor_user_id as ended_by_user_id,
        coalesce(next_event_type = 'COMPLETED', false) as is_completed,
        epoch_ms(next_occurred_at) - epoch_ms(occurred_at) as assignment_ms
    from ordered
    where event_type in ('ACCEPTED', 'REASSIGNED') and assignee_user_id is not null
)

-- stored in conversation order: incremental builds find a conversation's rows by zone map
select * from final order by conversation_id
