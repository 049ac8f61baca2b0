-- One row per organization, agent and day (in the organization's timezone) on which the agent did
-- something measurable. Responses are credited to the agent who sent them, on the day they were sent.
-- Incrementally, only the (organization, agent, day) keys of the rows that changed are recomputed:
-- each input is filtered with key_filter on the same expressions it is grouped by.
with messages as not materialized (
    select * from {{ ref('int_messages') }}
),

assignments as not materialized (
    select * from {{ ref('int_assignments') }}
),

events as not materialized (
    select * from {{ ref('int_lifecycle_events') }}
),

turns as not materialized (
    select * from {{ ref('response_times') }}
),

concurrency as (
    select * from {{ ref('int_agent_concurrency_daily') }}
    where {{ key_filter('int_agent_concurrency_daily', 'organization_id', 'user_id', 'metric_date') }}
),

online as (
    select * from {{ ref('int_agent_online_daily') }}
    where {{ key_filter('int_agent_online_daily', 'organization_id', 'user_id', 'metric_date') }}
),

users as (
    select user_id, organization_id, user_email, user_name, user_role from {{ ref('stg_users') }}
),

sent as (
    select
        organization_id,
        author_user_id as user_id,
        sent_local_date as metric_date,
        count(*) as total_messages_sent,
        avg(body_length_chars) as avg_message_length_chars
    from messages
    where is_human_reply and author_user_id is not null and {{ key_filter('int_messages', 'organization_id', 'author_user_id', 'sent_local_date') }}
    group by all
),

received as (
    select
        organization_id,
        assignee_user_id as user_id,
        sent_local_date as metric_date,
        count(*) as total_messages_received
    from messages
    where is_customer_message and assignee_user_id is not null and {{ key_filter('int_messages', 'organization_id', 'assignee_user_id', 'sent_local_date') }}
    group by all
),

accepted as (
    select
        organization_id,
        user_id,
        assigned_local_at::date as metric_date,
        count(*) filter (where start_event_type = 'ACCEPTED') as conversations_accepted,
        count(*) filter (where start_event_type = 'REASSIGNED') as conversations_reassigned_to
    from assignments
    where {{ key_filter('int_assignments', 'organization_id', 'user_id', 'assigned_local_at::date') }}
    group by all
),

handled as (
    select
        organization_id,
        user_id,
        ended_local_at::date as metric_date,
        count(*) as count_handled,
        avg(assignment_ms) as avg_handle_ms,
        quantile_cont(assignment_ms, 0.5) as median_handle_ms,
        quantile_cont(assignment_ms, 0.9) as p90_handle_ms
    from assignments
    where is_completed and {{ key_filter('int_assignments', 'organization_id', 'user_id', 'ended_local_at::date') }}
    group by all
),

completed as (
    select
        organization_id,
        actor_user_id as user_id,
        occurred_local_at::date as metric_date,
        count(*) as conversations_completed
    from events
    where event_type = 'COMPLETED' and actor_user_id is not null and {{ key_filter('int_lifecycle_events', 'organization_id', 'actor_user_id', 'occurred_local_at::date') }}
    group by all
),

touched as (
    select organization_id, author_user_id as user_id, sent_local_date as metric_date, conversation_id
    from messages where is_human_reply and author_user_id is not null and {{ key_filter('int_messages', 'organization_id', 'author_user_id', 'sent_local_date') }}
    union
    select organization_id, user_id, assigned_local_at::date, conversation_id from assignments
    where {{ key_filter('int_assignments', 'organization_id', 'user_id', 'assigned_local_at::date') }}
    union
    select organization_id, actor_user_id, occurred_local_at::date, conversation_id
    from events where event_type = 'COMPLETED' and actor_user_id is not null and {{ key_filter('int_lifecycle_events', 'organization_id', 'actor_user_id', 'occurred_local_at::date') }}
),

conversations as (
    select organization_id, user_id, metric_date, count(distinct conversation_id) as total_conversations
    from touched
    group by all
),

first_responses as (
    select
        organization_id,
        responder_user_id as user_id,
        responded_local_date as metric_date,
        count(*) as count_first_responses,
        avg(response_ms) as avg_first_response_ms,
        quantile_cont(response_ms, 0.5) as median_first_response_ms,
        quantile_cont(response_ms, 0.9) as p90_first_response_ms,
        min(response_ms) as min_first_response_ms,
        max(response_ms) as max_first_response_ms,
        avg(response_business_ms) as avg_first_response_business_ms,
        quantile_cont(response_business_ms, 0.5) as median_first_response_business_ms,
        quantile_cont(response_business_ms, 0.9) as p90_first_response_business_ms
    from turns
    where is_first_response and responder_user_id is not null and {{ key_filter('response_times', 'organization_id', 'responder_user_id', 'responded_local_date') }}
    group by all
),

responses as (
    select
        organization_id,
        responder_user_id as user_id,
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
        min(response_business_ms) as min_response_time_business_ms,
        max(response_business_ms) as max_response_time_business_ms
    from turns
    where responder_user_id is not null and {{ key_filter('response_times', 'organization_id', 'responder_user_id', 'responded_local_date') }}
    group by all
),

spine as (
    select organization_id, user_id, metric_date from sent
    union select organization_id, user_id, metric_date from received
    union select organization_id, user_id, metric_date from accepted
    union select organization_id, user_id, metric_date from handled
    union select organization_id, user_id, metric_date from completed
    union select organization_id, user_id, metric_date from responses
    union select organization_id, user_id, metric_date from concurrency
    union select organization_id, user_id, metric_date from online
),

final as (
    select
        s.organization_id,
        s.user_id as agent_user_id,
        u.user_email as agent_email,
        u.user_name as agent_name,
        s.metric_date,
        coalesce(cv.total_conversations, 0) as total_conversations,
        coalesce(a.conversations_accepted, 0) as conversations_accepted,
        coalesce(a.conversations_reassigned_to, 0) as conversations_reassigned_to,
        coalesce(c.conversations_completed, 0) as conversations_completed,
        coalesce(se.total_messages_sent, 0) as total_messages_sent,
        coalesce(r.total_messages_received, 0) as total_messages_received,
        se.avg_message_length_chars,
        coalesce(fr.count_first_responses, 0) as count_first_responses,
        fr.avg_first_response_ms,
        fr.median_first_response_ms,
        fr.p90_first_response_ms,
        fr.min_first_response_ms,
        fr.max_first_response_ms,
        fr.avg_first_response_business_ms,
        fr.median_first_response_business_ms,
        fr.p90_first_response_business_ms,
        coalesce(rt.count_responses, 0) as count_responses,
        rt.avg_response_time_ms,
        rt.median_response_time_ms,
        rt.p90_response_time_ms,
        rt.min_response_time_ms,
        rt.max_response_time_ms,
        rt.avg_response_time_business_ms,
        rt.median_response_time_business_ms,
        rt.p90_response_time_business_ms,
        rt.min_response_time_business_ms,
        rt.max_response_time_business_ms,
        coalesce(h.count_handled, 0) as count_handled,
        h.avg_handle_ms,
        h.median_handle_ms,
        h.p90_handle_ms,
        coalesce(cc.concurrent_peak, 0) as concurrent_peak,
        coalesce(o.total_online_minutes, 0) as total_online_minutes
    from spine as s
    left join conversations as cv using (organization_id, user_id, metric_date)
    left join accepted as a using (organization_id, user_id, metric_date)
    left join completed as c using (organization_id, user_id, metric_date)
    left join sent as se using (organization_id, user_id, metric_date)
    left join received as r using (organization_id, user_id, metric_date)
    left join first_responses as fr using (organization_id, user_id, metric_date)
    left join responses as rt using (organization_id, user_id, metric_date)
    left join handled as h using (organization_id, user_id, metric_date)
    left join concurrency as cc using (organization_id, user_id, metric_date)
    left join online as o using (organization_id, user_id, metric_date)
    inner join users as u on u.user_id = s.user_id and u.organization_id = s.organization_id
)

select * from final
