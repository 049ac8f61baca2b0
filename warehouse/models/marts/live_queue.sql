-- One row per open conversation (PENDING or ASSIGNED) as of the build: unassigned, unattended
-- (a customer turn waiting for a human reply, and since when), and the assignee's presence.
with waiting as (
    select conversation_id, min(turn_started_at) as waiting_since
    from {{ ref('int_customer_turns') }}
    where is_waiting
    group by conversation_id
),

latest_presence as (
    select user_id, arg_max(presence_state, occurred_at) as presence_state, max(occurred_at) as last_presence_at
    from {{ ref('stg_presence_events') }}
    group by user_id
),

final as (
    select
        c.conversation_id,
        c.organization_id,
        c.channel_id,
        ch.channel_name,
        ch.provider,
        c.conversation_status,
        c.current_cycle_number as cycle_number,
        c.cycle_started_at,
        c.assigned_user_id,
        u.user_email as assignee_email,
        p.presence_state as assignee_presence_state,
        p.last_presence_at as assignee_last_presence_at,
        c.assigned_user_id is null as is_unassigned,
        w.waiting_since is not null as is_unattended,
        w.waiting_since,
        case when w.waiting_since is not null
            then epoch_ms(b.as_of) - epoch_ms(w.waiting_since) end as waiting_ms,
        c.count_unread,
        c.last_message_at,
        b.as_of
    from {{ ref('stg_conversations') }} as c
    cross join {{ source('build_info') }} as b
    left join waiting as w on w.conversation_id = c.conversation_id
    left join {{ ref('stg_channels') }} as ch on ch.channel_id = c.channel_id
    left join {{ ref('stg_users') }} as u on u.user_id = c.assigned_user_id
    left join latest_presence as p on p.user_id = c.assigned_user_id
    where c.conversation_status in ('PENDING', 'ASSIGNED')
)

select * from final
