-- One row per conversation cycle: from its first customer message (creation or reopen) to the
-- COMPLETED that ends it. First response = answer to the cycle's first turn; queue = start → first
-- assignment; handle = the completing assignment's start → COMPLETED; resolution = start → COMPLETED
-- of the same cycle. Business-hours variants use the channel's current calendar; SLA statuses use the
-- organization's current targets, judged at the build's as-of time for cycles still open.
with conversations as (
    select conversation_id, organization_id, channel_id from {{ ref('stg_conversations') }}
),

events as (
    select * from {{ ref('int_lifecycle_events') }}
),

messages as (
    select * from {{ ref('int_messages') }}
),

turns as (
    select * from {{ ref('int_customer_turns') }}
),

assignments as (
    select * from {{ ref('int_assignments') }}
),

organizations as (
    select organization_id, sla_first_response_ms, sla_resolution_ms from {{ ref('stg_organizations') }}
),

business_buckets as (
    select * from {{ source('cal_business_buckets') }}
),

build_info as (
    select as_of from {{ source('build_info') }}
),

message_cycles as (
    select
        conversation_id,
        cycle_number,
        min(sent_at) filter (where is_customer_message) as first_customer_message_at,
        count(*) filter (where is_customer_message) as count_customer_messages,
        count(*) filter (where is_human_reply) as count_agent_messages,
        count(*) filter (where direction = 'OUTBOUND' and author_kind in ('bot', 'system')) as count_bot_messages
    from messages
    group by conversation_id, cycle_number
),

event_cycles as (
    select
        conversation_id,
        cycle_number,
        min(occurred_at) filter (where event_type in ('CREATED', 'REOPENED')) as opened_at,
        min(occurred_at) filter (where event_type = 'COMPLETED') as completed_at,
        arg_min(actor_user_id, occurred_at) filter (where event_type = 'COMPLETED') as completed_by_user_id,
        bool_or(event_type = 'REOPENED') as is_reopened
    from events
    group by conversation_id, cycle_number
),

assignment_cycles as (
    select
        conversation_id,
        cycle_number,
        min(assigned_at) as accepted_at,
        arg_min(user_id, assigned_at) as accepted_by_user_id,
        count(*) as count_assignments,
        max(assigned_at) filter (where is_completed) as final_assigned_at,
        arg_max(user_id, assigned_at) filter (where is_completed) as handled_by_user_id
    from assignments
    group by conversation_id, cycle_number
),

turn_cycles as (
    select
        conversation_id,
        cycle_number,
        count(*) as count_turns,
        count(*) filter (where is_unanswered) as count_unanswered_turns,
        any_value(responded_at) filter (where turn_number = 1) as first_response_at,
        any_value(responder_user_id) filter (where turn_number = 1) as first_responder_user_id,
        any_value(response_ms) filter (where turn_number = 1) as first_response_ms,
        any_value(response_business_ms) filter (where turn_number = 1) as first_response_business_ms
    from turns
    group by conversation_id, cycle_number
),

cycles as (
    select
        coalesce(m.conversation_id, e.conversation_id) as conversation_id,
        coalesce(m.cycle_number, e.cycle_number) as cycle_number,
        m.first_customer_message_at,
        coalesce(m.count_customer_messages, 0) as count_customer_messages,
        coalesce(m.count_agent_messages, 0) as count_agent_messages,
        coalesce(m.count_bot_messages, 0) as count_bot_messages,
        e.opened_at,
        e.completed_at,
        e.completed_by_user_id,
        coalesce(e.is_reopened, false) as is_reopened
    from message_cycles as m
    full outer join event_cycles as e
        on e.conversation_id = m.conversation_id and e.cycle_number = m.cycle_number
),

joined as (
    select
        c.conversation_id,
        c.cycle_number,
        conv.organization_id,
        conv.channel_id,
        coalesce(c.first_customer_message_at, c.opened_at) as started_at,
        a.accepted_at,
        a.accepted_by_user_id,
        coalesce(a.count_assignments, 0) as count_assignments,
        t.first_response_at,
        t.first_responder_user_id,
        t.first_response_ms,
        t.first_response_business_ms,
        a.final_assigned_at,
        a.handled_by_user_id,
        c.completed_at,
        c.completed_by_user_id,
        c.is_reopened or c.cycle_number > 1 as is_reopened,
        c.count_customer_messages,
        c.count_agent_messages,
        c.count_bot_messages,
        coalesce(t.count_turns, 0) as count_turns,
        coalesce(t.count_unanswered_turns, 0) as count_unanswered_turns,
        (select as_of from build_info) as as_of
    from cycles as c
    inner join conversations as conv on conv.conversation_id = c.conversation_id
    left join assignment_cycles as a
        on a.conversation_id = c.conversation_id and a.cycle_number = c.cycle_number
    left join turn_cycles as t
        on t.conversation_id = c.conversation_id and t.cycle_number = c.cycle_number
    where c.first_customer_message_at is not null or c.opened_at is not null
),

clocked as (
    select
        j.*,
        coalesce(b1.clock_ms + least(greatest(epoch_ms(j.started_at) - b1.s1_ms, 0), b1.l1_ms) + least(greatest(epoch_ms(j.started_at) - b1.s2_ms, 0), b1.l2_ms), 0) as clock_started,
        b2.clock_ms + least(greatest(epoch_ms(j.accepted_at) - b2.s1_ms, 0), b2.l1_ms) + least(greatest(epoch_ms(j.accepted_at) - b2.s2_ms, 0), b2.l2_ms) as clock_accepted,
        b3.clock_ms + least(greatest(epoch_ms(j.final_assigned_at) - b3.s1_ms, 0), b3.l1_ms) + least(greatest(epoch_ms(j.final_assigned_at) - b3.s2_ms, 0), b3.l2_ms) as clock_final_assigned,
        b4.clock_ms + least(greatest(epoch_ms(j.completed_at) - b4.s1_ms, 0), b4.l1_ms) + least(greatest(epoch_ms(j.completed_at) - b4.s2_ms, 0), b4.l2_ms) as clock_completed,
        b5.clock_ms + least(greatest(epoch_ms(j.as_of) - b5.s1_ms, 0), b5.l1_ms) + least(greatest(epoch_ms(j.as_of) - b5.s2_ms, 0), b5.l2_ms) as clock_as_of
    from joined as j
    left join business_buckets as b1
        on b1.channel_id = j.channel_id and b1.bucket_at = make_timestamptz(epoch_us(j.started_at) // 900000000 * 900000000)
    left join business_buckets as b2
        on b2.channel_id = j.channel_id and b2.bucket_at = make_timestamptz(epoch_us(j.accepted_at) // 900000000 * 900000000)
    left join business_buckets as b3
        on b3.channel_id = j.channel_id and b3.bucket_at = make_timestamptz(epoch_us(j.final_assigned_at) // 900000000 * 900000000)
    left join business_buckets as b4
        on b4.channel_id = j.channel_id and b4.bucket_at = make_timestamptz(epoch_us(j.completed_at) // 900000000 * 900000000)
    left join business_buckets as b5
        on b5.channel_id = j.channel_id and b5.bucket_at = make_timestamptz(epoch_us(j.as_of) // 900000000 * 900000000)
),

durations as (
    select
        c.*,
        greatest(epoch_ms(accepted_at) - epoch_ms(started_at), 0) as queue_ms,
        greatest(coalesce(clock_accepted, 0) - clock_started, 0) * (accepted_at is not null)::int as queue_business_ms_raw,
        epoch_ms(completed_at) - epoch_ms(final_assigned_at) as handle_ms,
        coalesce(clock_completed, 0) - coalesce(clock_final_assigned, 0) as handle_business_ms_raw,
        epoch_ms(completed_at) - epoch_ms(started_at) as resolution_ms,
        coalesce(clock_completed, 0) - clock_started as resolution_business_ms_raw,
        epoch_ms(as_of) - epoch_ms(started_at) as elapsed_ms,
        coalesce(clock_as_of, 0) - clock_started as elapsed_business_ms,
        o.sla_first_response_ms,
        o.sla_resolution_ms
    from clocked as c
    left join organizations as o on o.organization_id = c.organization_id
),

final as (
    select
        conversation_id,
        cycle_number,
        organization_id,
        channel_id,
        started_at,
        accepted_at,
        accepted_by_user_id,
        first_response_at,
        first_responder_user_id,
        final_assigned_at,
        handled_by_user_id,
        completed_at,
        completed_by_user_id,
        completed_at is null as is_open,
        is_reopened,
        count_assignments,
        count_customer_messages,
        count_agent_messages,
        count_bot_messages,
        count_turns,
        count_unanswered_turns,
        queue_ms,
        first_response_ms,
        handle_ms,
        resolution_ms,
        case when accepted_at is not null then queue_business_ms_raw end as queue_business_ms,
        first_response_business_ms,
        case when handle_ms is not null then handle_business_ms_raw end as handle_business_ms,
        case when completed_at is not null then resolution_business_ms_raw end as resolution_business_ms,
        sla_first_response_ms,
        sla_resolution_ms,
        case
            when count_customer_messages = 0 then null
            when first_response_ms is not null
                then case when first_response_ms <= sla_first_response_ms then 'met' else 'breached' end
            when completed_at is not null then 'unanswered'
            when elapsed_ms > sla_first_response_ms then 'breached'
            else 'pending'
        end as first_response_sla_status,
        case
            when count_customer_messages = 0 then null
            when first_response_business_ms is not null
                then case when first_response_business_ms <= sla_first_response_ms then 'met' else 'breached' end
            when completed_at is not null then 'unanswered'
            when elapsed_business_ms > sla_first_response_ms then 'breached'
            else 'pending'
        end as first_response_business_sla_status,
        case
            when completed_at is not null
                then case when resolution_ms <= sla_resolution_ms then 'met' else 'breached' end
            when elapsed_ms > sla_resolution_ms then 'breached'
            else 'pending'
        end as resolution_sla_status,
        case
            when completed_at is not null
                then case when resolution_business_ms_raw <= sla_resolution_ms then 'met' else 'breached' end
            when elapsed_business_ms > sla_resolution_ms then 'breached'
            else 'pending'
        end as resolution_business_sla_status,
        as_of
    from durations
)

-- stored in conversation order: incremental builds find a conversation's rows by zone map
select * from final order by conversation_id
