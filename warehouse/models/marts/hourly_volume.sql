-- One row per organization, channel, local day and local hour with traffic: the weekday x hour
-- heatmap is a sum over a date range (avg response = sum_response_ms / count_responses).
with messages as (
    select * from {{ ref('int_messages') }}
),

turns as (
    select * from {{ ref('response_times') }}
),

message_hours as (
    select
        organization_id,
        channel_id,
        sent_local_date as metric_date,
        sent_local_hour as hour_of_day,
        count(*) filter (where is_customer_message) as total_messages_received,
        count(*) filter (where is_human_reply) as total_messages_sent
    from messages
    where sent_local_date is not null and {{ key_filter('int_messages', 'organization_id', 'channel_id', 'sent_local_date') }}
    group by all
),

turn_hours as (
    select
        organization_id,
        channel_id,
        turn_started_local_date as metric_date,
        turn_started_local_hour as hour_of_day,
        count(*) as count_turns,
        count(*) filter (where is_first_response or (turn_number = 1 and responded_at is null)) as count_cycle_starts,
        count(response_ms) as count_responses,
        coalesce(sum(response_ms), 0)::bigint as sum_response_ms,
        coalesce(sum(response_business_ms), 0)::bigint as sum_response_business_ms
    from turns
    where {{ key_filter('response_times', 'organization_id', 'channel_id', 'turn_started_local_date') }}
    group by all
),

final as (
    select
        coalesce(m.organization_id, t.organization_id) as organization_id,
        coalesce(m.channel_id, t.channel_id) as channel_id,
        coalesce(m.metric_date, t.metric_date) as metric_date,
        coalesce(m.hour_of_day, t.hour_of_day) as hour_of_day,
        isodow(coalesce(m.metric_date, t.metric_date)) as day_of_week,
        coalesce(m.total_messages_received, 0) as total_messages_received,
        coalesce(m.total_messages_sent, 0) as total_messages_sent,
        coalesce(t.count_turns, 0) as count_turns,
        coalesce(t.count_cycle_starts, 0) as count_cycle_starts,
        coalesce(t.count_responses, 0) as count_responses,
        coalesce(t.sum_response_ms, 0) as sum_response_ms,
        coalesce(t.sum_response_business_ms, 0) as sum_response_business_ms
    from message_hours as m
    full outer join turn_hours as t
        on t.organization_id = m.organization_id
        and t.channel_id = m.channel_id
        and t.metric_date = m.metric_date
        and t.hour_of_day = m.hour_of_day
)

select * from final
