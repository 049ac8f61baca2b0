-- One row per customer turn (int_customer_turns) with its channel's name and the responder's email.
with final as (
    select
        t.conversation_id,
        t.cycle_number,
        t.turn_number,
        t.organization_id,
        t.channel_id,
        ch.channel_name,
        ch.provider,
        t.first_message_id,
        t.count_customer_messages,
        t.turn_started_at,
        t.turn_started_local_date,
        t.turn_started_local_hour,
        t.response_message_id,
        t.responded_at,
        t.responded_local_date,
        t.responder_user_id,
        u.user_email as responder_email,
        t.response_ms,
        t.response_business_ms,
        t.turn_number = 1 as is_first_response,
        t.is_unanswered,
        t.is_waiting
    from {{ ref('int_customer_turns') }} as t
    left join {{ ref('stg_channels') }} as ch on ch.channel_id = t.channel_id
    left join {{ ref('stg_users') }} as u on u.user_id = t.responder_user_id
)

-- stored in conversation order: incremental builds find a conversation's rows by zone map
select * from final order by conversation_id
