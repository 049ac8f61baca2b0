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

cycles as not materialized (
    select * from {{ ref('conversation_cycles') }}
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
        {{ duration_stats('assignment_ms', 'handle', count='count_handled', business=False) }}
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
        {{ duration_stats('response_ms', 'first_response', count='count_first_responses') }}
    from turns
    where is_first_response and responder_user_id is not null and {{ key_filter('response_times', 'organization_id', 'responder_user_id', 'responded_local_date') }}
    group by all
),

responses as (
    select
        organization_id,
        responder_user_id as user_id,
        responded_local_date as metric_date,
        {{ duration_stats('response_ms', 'response_time', count='count_responses') }}
    from turns
    where responder_user_id is not null and {{ key_filter('response_times', 'organization_id', 'responder_user_id', 'responded_local_date') }}
    group by all
),

resolutions as (
    -- credited to the agent who completed the cycle, on the local day of completion
    select organization_id, completed_by_user_id as user_id, completed_local_date as metric_date,
        {{ duration_stats('resolution_ms', 'resolution', count='count_resolutions') }}
    from cycles
    where completed_by_user_id is not null
        and {{ key_filter('conversation_cycles', 'organization_id', 'completed_by_user_id', 'completed_local_date') }}
    group by all
),

spine as (
    {{ key_spine('organization_id, user_id, metric_date', 'sent', 'received', 'accepted', 'handled', 'completed',
                 'responses', 'resolutions', 'concurrency', 'online') }}
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
        {{ stat_columns('fr', 'first_response', count='count_first_responses') }},
        {{ stat_columns('rt', 'response_time', count='count_responses') }},
        {{ stat_columns('h', 'handle', count='count_handled', business=False) }},
        {{ stat_columns('rs', 'resolution', count='count_resolutions') }},
        coalesce(cc.concurrent_peak, 0) as concurrent_peak,
        coalesce(o.total_online_minutes, 0) as total_online_minutes
    from spine as s
    {{ left_join_using('organization_id, user_id, metric_date', 'conversations as cv', 'accepted as a',
                       'completed as c', 'sent as se', 'received as r', 'first_responses as fr', 'responses as rt',
                       'handled as h', 'resolutions as rs', 'concurrency as cc', 'online as o') }}
    inner join users as u on u.user_id = s.user_id and u.organization_id = s.organization_id
)

select * from final
