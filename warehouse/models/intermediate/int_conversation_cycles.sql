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
        coalesce({{ business_clock('b1', 'j.started_at') }}, 0) as clock_started,
        {{ business_clock('b2', 'j.accepted_at') }} as clock_accepted,
        {{ business_clock('b3', 'j.final_assigned_at') }} as clock_final_assigned,
        {{ business_clock('b4', 'j.completed_at') }} as clock_completed,
        {{ business_clock('b5', 'j.as_of') }} as clock_as_of
    from joined as j
    {{ business_clock_join('b1', 'j.started_at', 'j.channel_id') }}
    {{ business_clock_join('b2', 'j.accepted_at', 'j.channel_id') }}
    {{ business_clock_join('b3', 'j.final_assigned_at', 'j.channel_id') }}
    {{ business_clock_join('b4', 'j.completed_at', 'j.channel_id') }}
    {{ business_clock_join('b5', 'j.as_of', 'j.channel_id') }}
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
        {{ sla_status('first_response_ms', 'sla_first_response_ms', elapsed='elapsed_ms',
                      reached='first_response_ms is not null', unanswered='completed_at is not null',
                      none='count_customer_messages = 0') }} as first_response_sla_status,
        {{ sla_status('first_response_business_ms', 'sla_first_response_ms', elapsed='elapsed_business_ms',
                      reached='first_response_business_ms is not null', unanswered='completed_at is not null',
                      none='count_customer_messages = 0') }} as first_response_business_sla_status,
        {{ sla_status('resolution_ms', 'sla_resolution_ms', elapsed='elapsed_ms',
                      reached='completed_at is not null') }} as resolution_sla_status,
        {{ sla_status('resolution_business_ms_raw', 'sla_resolution_ms', elapsed='elapsed_business_ms',
                      reached='completed_at is not null') }} as resolution_business_sla_status
    from durations
)

-- stored in conversation order: incremental builds find a conversation's rows by zone map
select * from final order by conversation_id
