-- Customer turns: a run of customer messages of one cycle not yet answered by a human agent. The
-- turn is answered by the next human reply of the same cycle (credited to whoever sent it); a turn
-- still open when its cycle completed is unanswered, one in a cycle still open is waiting.
-- replies_before = human replies earlier in the cycle; the reply answering a turn is the one whose
-- replies_before equals the turn's.
with messages as (
    select * from {{ ref('int_messages') }}
    where is_customer_message or is_human_reply
),

completions as (
    select conversation_id, cycle_number, min(occurred_at) as completed_at
    from {{ ref('int_lifecycle_events') }}
    where event_type = 'COMPLETED'
    group by conversation_id, cycle_number
),

sequenced as (
    select
        *,
        coalesce(sum(case when is_human_reply then 1 else 0 end) over (
            partition by conversation_id, cycle_number order by sent_at, message_id
            rows between unbounded preceding and 1 preceding
        ), 0) as replies_before
    from messages
),

turns as (
    -- a turn's customer messages and the reply that answers it share (cycle, replies before)
    select
        organization_id,
        conversation_id,
        any_value(channel_id) as channel_id,
        cycle_number,
        replies_before,
        min(sent_at) filter (where is_customer_message) as turn_started_at,
        arg_min(sent_local_date, sent_at) filter (where is_customer_message) as turn_started_local_date,
        arg_min(sent_local_hour, sent_at) filter (where is_customer_message) as turn_started_local_hour,
        arg_min(message_id, sent_at) filter (where is_customer_message) as first_message_id,
        count(*) filter (where is_customer_message) as count_customer_messages,
        any_value(message_id) filter (where is_human_reply) as response_message_id,
        any_value(author_user_id) filter (where is_human_reply) as responder_user_id,
        any_value(sent_at) filter (where is_human_reply) as responded_at,
        any_value(sent_local_date) filter (where is_human_reply) as responded_local_date
    from sequenced
    group by organization_id, conversation_id, cycle_number, replies_before
    having count(*) filter (where is_customer_message) > 0
),

joined as (
    select
        t.*,
        row_number() over (
            partition by t.conversation_id, t.cycle_number order by t.replies_before
        ) as turn_number,
        c.completed_at
    from turns as t
    left join completions as c
        on c.conversation_id = t.conversation_id and c.cycle_number = t.cycle_number
),

clocked as (
    select
        j.*,
        coalesce({{ business_clock('bs', 'j.turn_started_at') }}, 0) as started_business_clock_ms,
        {{ business_clock('br', 'j.responded_at') }} as responded_business_clock_ms
    from joined as j
    {{ business_clock_join('bs', 'j.turn_started_at', 'j.channel_id') }}
    {{ business_clock_join('br', 'j.responded_at', 'j.channel_id') }}
),

final as (
    select
        organization_id,
        conversation_id,
        channel_id,
        cycle_number,
        turn_number,
        first_message_id,
        count_customer_messages,
        turn_started_at,
        turn_started_local_date,
        turn_started_local_hour,
        response_message_id,
        responder_user_id,
        responded_at,
        responded_local_date,
        epoch_ms(responded_at) - epoch_ms(turn_started_at) as response_ms,
        case when responded_at is not null
            then coalesce(responded_business_clock_ms, 0) - started_business_clock_ms
        end as response_business_ms,
        responded_at is null and completed_at is not null as is_unanswered,
        responded_at is null and completed_at is null as is_waiting
    from clocked
)

-- stored in conversation order: incremental builds find a conversation's rows by zone map
select * from final order by conversation_id
