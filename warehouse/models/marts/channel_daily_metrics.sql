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
        count(queue_ms) as count_queued,
        avg(queue_ms) as avg_queue_ms,
        quantile_cont(queue_ms, 0.5) as median_queue_ms,
        quantile_cont(queue_ms, 0.9) as p90_queue_ms,
        min(queue_ms) as min_queue_ms,
        max(queue_ms) as max_queue_ms,
        avg(queue_business_ms) as avg_queue_business_ms,
        quantile_cont(queue_business_ms, 0.5) as median_queue_business_ms,
        quantile_cont(queue_business_ms, 0.9) as p90_queue_business_ms
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
        avg(resolution_ms) as avg_resolution_ms,
        quantile_cont(resolution_ms, 0.5) as median_resolution_ms,
        quantile_cont(resolution_ms, 0.9) as p90_resolution_ms,
        min(resolution_ms) as min_resolution_ms,
        max(resolution_ms) as max_resolution_ms,
        avg(resolution_business_ms) as avg_resolution_business_ms,
        quantile_cont(resolution_business_ms, 0.5) as median_resolution_business_ms,
        quantile_cont(resolution_business_ms, 0.9) as p90_resolution_business_ms,
        avg(handle_ms) as avg_handle_ms,
        quantile_cont(handle_ms, 0.5) as median_handle_ms,
        quantile_cont(handle_ms, 0.9) as p90_handle_ms
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
        count(*) as count_responses,
        avg(response_ms) as avg_response_time_ms,
        quantile_cont(response_ms, 0.5) as median_response_time_ms,
        quantile_cont(response_ms, 0.9) as p90_response_time_ms,
        min(response_ms) as min_response_time_ms,
        max(response_ms) as max_response_time_ms,
        avg(response_business_ms) as avg_response_time_business_ms,
        quantile_cont(response_business_ms, 0.5) as median_response_time_business_ms,
        quantile_cont(response_business_ms, 0.9) as p90_response_time_business_ms,
        count(*) filter (where is_first_response) as count_first_responses,
        avg(response_ms) filter (where is_first_response) as avg_first_response_ms,
        quantile_cont(response_ms, 0.5) filter (where is_first_response) as median_first_response_ms,
        quantile_cont(response_ms, 0.9) filter (where is_first_response) as p90_first_response_ms,
        min(response_ms) filter (where is_first_response) as min_first_response_ms,
        max(response_ms) filter (where is_first_response) as max_first_response_ms,
        avg(response_business_ms) filter (where is_first_response) as avg_first_response_business_ms,
        quantile_cont(response_business_ms, 0.5) filter (where is_first_response) as median_first_response_business_ms,
        quantile_cont(response_business_ms, 0.9) filter (where is_first_response) as p90_first_response_business_ms
    from turns
    where responded_at is not null and {{ key_filter('response_times', 'organization_id', 'channel_id', 'responded_local_date') }}
    group by all
),

unanswered as (
    select
        organization_id,
        channel_id,
        turn_started_local_date as metric_date,
        count(*) filter (where is_unanswered) as count_unanswered_turns,
        count(*) filter (where is_waiting) as count_waiting_turns
    from turns
    where {{ key_filter('response_times', 'organization_id', 'channel_id', 'turn_started_local_date') }}
    group by all
),

spine as (
    select organization_id, channel_id, metric_date from message_stats
    union select organization_id, channel_id, metric_date from started
    union select organization_id, channel_id, metric_date from accepted
    union select organization_id, channel_id, metric_date from resolved
    union select organization_id, channel_id, metric_date from responses
    union select organization_id, channel_id, metric_date from unanswered
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
        coalesce(st.count_queued, 0) as count_queued,
        st.avg_queue_ms,
        st.median_queue_ms,
        st.p90_queue_ms,
        st.min_queue_ms,
        st.max_queue_ms,
        st.avg_queue_business_ms,
        st.median_queue_business_ms,
        st.p90_queue_business_ms,
        rs.avg_resolution_ms,
        rs.median_resolution_ms,
        rs.p90_resolution_ms,
        rs.min_resolution_ms,
        rs.max_resolution_ms,
        rs.avg_resolution_business_ms,
        rs.median_resolution_business_ms,
        rs.p90_resolution_business_ms,
        rs.avg_handle_ms,
        rs.median_handle_ms,
        rs.p90_handle_ms,
        coalesce(m.total_messages_received, 0) as total_messages_received,
        coalesce(m.total_messages_sent, 0) as total_messages_sent,
        coalesce(m.total_bot_messages, 0) as total_bot_messages,
        m.avg_inbound_message_length_chars,
        m.avg_message_length_chars,
        coalesce(r.count_first_responses, 0) as count_first_responses,
        r.avg_first_response_ms,
        r.median_first_response_ms,
        r.p90_first_response_ms,
        r.min_first_response_ms,
        r.max_first_response_ms,
        r.avg_first_response_business_ms,
        r.median_first_response_business_ms,
        r.p90_first_response_business_ms,
        coalesce(r.count_responses, 0) as count_responses,
        r.avg_response_time_ms,
        r.median_response_time_ms,
        r.p90_response_time_ms,
        r.min_response_time_ms,
        r.max_response_time_ms,
        r.avg_response_time_business_ms,
        r.median_response_time_business_ms,
        r.p90_response_time_business_ms,
        coalesce(u.count_unanswered_turns, 0) as count_unanswered_turns,
        coalesce(u.count_waiting_turns, 0) as count_waiting_turns
    from spine as s
    left join message_stats as m using (organization_id, channel_id, metric_date)
    left join started as st using (organization_id, channel_id, metric_date)
    left join accepted as a using (organization_id, channel_id, metric_date)
    left join resolved as rs using (organization_id, channel_id, metric_date)
    left join responses as r using (organization_id, channel_id, metric_date)
    left join unanswered as u using (organization_id, channel_id, metric_date)
    inner join channels as ch on ch.channel_id = s.channel_id
)

select * from final
