-- One row per organization, channel and day (organization's timezone) with volume and time metrics
-- (count, mean, median, p90, min, max; business-hours variants). Incrementally, only the keys of the
-- rows that changed are recomputed (key_filter on the expressions each input is grouped by).
with messages as (
    select * from {{ ref('int_messages') }}
),

assignments as (
    select * from {{ ref('int_assignments') }}
),

turns as not materialized (
    select * from {{ ref('response_times') }}
),

cycles as not materialized (
    select * from {{ ref('conversation_cycles') }}
),

channels as (
    select channel_id, organization_id, channel_name, provider from {{ ref('stg_channels') }}
),

message_stats as (
    select
        organization_id,
        channel_id,
        sent_local_date as metric_date,
        count(*) filter (where is_customer_message) as total_messages_received,
        count(*) filter (where is_human_reply) as total_messages_sent,
        count(*) filter (where direction = 'OUTBOUND' and author_kind in ('bot', 'system')) as total_bot_messages,
        avg(body_length_chars) filter (where is_customer_message) as avg_inbound_message_length_chars,
        avg(body_length_chars) filter (where is_human_reply) as avg_message_length_chars
    from messages
    where {{ key_filter('int_messages', 'organization_id', 'channel_id', 'sent_local_date') }}
    group by all
),

started as (
    select
        organization_id,
        channel_id,
        started_local_date as metric_date,
        count(*) as conversations_started,
        count(*) filter (where is_reopened) as conversations_reopened,
        count(*) filter (where count_unanswered_turns > 0) as cycles_with_unanswered_turns,
        {{ duration_stats('queue_ms', 'queue', count='count_queued') }}
    from cycles
    where {{ key_filter('conversation_cycles', 'organization_id', 'channel_id', 'started_local_date') }}
    group by all
),

resolved as (
    select
        organization_id,
        channel_id,
        completed_local_date as metric_date,
        count(*) as conversations_completed,
        {{ duration_stats('resolution_ms', 'resolution') }},
        {{ duration_stats('handle_ms', 'handle') }}
    from cycles
    where completed_at is not null and {{ key_filter('conversation_cycles', 'organization_id', 'channel_id', 'completed_local_date') }}
    group by all
),

accepted as (
    select
        organization_id,
        channel_id,
        assigned_local_at::date as metric_date,
        count(*) filter (where start_event_type = 'ACCEPTED') as conversations_accepted
    from assignments
    where {{ key_filter('int_assignments', 'organization_id', 'channel_id', 'assigned_local_at::date') }}
    group by all
),

responses as (
    select
        organization_id,
        channel_id,
        responded_local_date as metric_date,
        {{ duration_stats('response_ms', 'response_time', count='count_responses') }},
        {{ duration_stats('response_ms', 'first_response', count='count_first_responses', where='is_first_response') }}
    from turns
    where responded_at is not null and {{ key_filter('response_times', 'organization_id', 'channel_id', 'responded_local_date') }}
    group by all
),

unanswered as (
    select
        organization_id,
        channel_id,
        turn_started_local_date as metric_date,
        count(*) as count_customer_turns,
        count(*) filter (where is_unanswered) as count_unanswered_turns,
        count(*) filter (where is_waiting) as count_waiting_turns
    from turns
    where {{ key_filter('response_times', 'organization_id', 'channel_id', 'turn_started_local_date') }}
    group by all
),

spine as (
    {{ key_spine('organization_id, channel_id, metric_date', 'message_stats', 'started', 'accepted', 'resolved',
                 'responses', 'unanswered') }}
),

final as (
    select
        s.organization_id,
        s.channel_id,
        ch.channel_name,
        ch.provider,
        s.metric_date,
        coalesce(st.conversations_started, 0) as conversations_started,
        coalesce(st.conversations_reopened, 0) as conversations_reopened,
        coalesce(a.conversations_accepted, 0) as conversations_accepted,
        coalesce(rs.conversations_completed, 0) as conversations_completed,
        {{ stat_columns('st', 'queue', count='count_queued') }},
        {{ stat_columns('rs', 'resolution') }},
        {{ stat_columns('rs', 'handle') }},
        coalesce(m.total_messages_received, 0) as total_messages_received,
        coalesce(m.total_messages_sent, 0) as total_messages_sent,
        coalesce(m.total_bot_messages, 0) as total_bot_messages,
        m.avg_inbound_message_length_chars,
        m.avg_message_length_chars,
        {{ stat_columns('r', 'first_response', count='count_first_responses') }},
        {{ stat_columns('r', 'response_time', count='count_responses') }},
        coalesce(u.count_customer_turns, 0) as count_customer_turns,
        coalesce(u.count_unanswered_turns, 0) as count_unanswered_turns,
        coalesce(u.count_waiting_turns, 0) as count_waiting_turns
    from spine as s
    {{ left_join_using('organization_id, channel_id, metric_date', 'message_stats as m', 'started as st',
                       'accepted as a', 'resolved as rs', 'responses as r', 'unanswered as u') }}
    inner join channels as ch on ch.channel_id = s.channel_id
)

select * from final
