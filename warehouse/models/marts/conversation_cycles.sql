-- One row per conversation cycle (int_conversation_cycles) with local days, the channel's name and
-- the emails of the agents involved.
with users as (
    select user_id, user_email from {{ ref('stg_users') }}
),

final as (
    select
        c.conversation_id,
        c.cycle_number,
        c.organization_id,
        c.channel_id,
        ch.channel_name,
        ch.provider,
        c.started_at,
        {{ local_time('c.started_at', 'tz') }}::date as started_local_date,
        c.accepted_at,
        c.accepted_by_user_id,
        ua.user_email as accepted_by_email,
        c.first_response_at,
        c.first_responder_user_id,
        uf.user_email as first_responder_email,
        c.final_assigned_at,
        c.handled_by_user_id,
        uh.user_email as handled_by_email,
        c.completed_at,
        {{ local_time('c.completed_at', 'tzc') }}::date as completed_local_date,
        c.completed_by_user_id,
        uc.user_email as completed_by_email,
        c.is_open,
        c.is_reopened,
        c.count_assignments,
        c.count_customer_messages,
        c.count_agent_messages,
        c.count_bot_messages,
        c.count_turns,
        c.count_unanswered_turns,
        c.queue_ms,
        c.first_response_ms,
        c.handle_ms,
        c.resolution_ms,
        c.queue_business_ms,
        c.first_response_business_ms,
        c.handle_business_ms,
        c.resolution_business_ms,
        c.sla_first_response_ms,
        c.sla_resolution_ms,
        c.first_response_sla_status,
        c.first_response_business_sla_status,
        c.resolution_sla_status,
        c.resolution_business_sla_status
    from {{ ref('int_conversation_cycles') }} as c
    left join {{ ref('stg_channels') }} as ch on ch.channel_id = c.channel_id
    left join {{ ref('stg_organizations') }} as o on o.organization_id = c.organization_id
    {{ utc_offset_join('tz', 'c.started_at', 'o.timezone') }}
    {{ utc_offset_join('tzc', 'c.completed_at', 'o.timezone') }}
    left join users as ua on ua.user_id = c.accepted_by_user_id
    left join users as uf on uf.user_id = c.first_responder_user_id
    left join users as uh on uh.user_id = c.handled_by_user_id
    left join users as uc on uc.user_id = c.completed_by_user_id
)

-- stored in conversation order: incremental builds find a conversation's rows by zone map
select * from final order by conversation_id
