-- Messages classified for metrics: customer messages open turns; human replies (an agent's
-- outbound message that did not fail) answer them; bot and system messages never count.
-- Each message gets its cycle (1 + COMPLETED events strictly before it), the agent assigned when it
-- was sent, and its local time.
with messages as (
    select * from {{ ref('stg_messages') }}
),

completions as (
    select conversation_id, occurred_at as completed_at, cycle_number
    from {{ ref('int_lifecycle_events') }}
    where event_type = 'COMPLETED'
),

assignments as (
    select conversation_id, user_id, assigned_at, ended_at from {{ ref('int_assignments') }}
),

organizations as (
    select organization_id, timezone from {{ ref('stg_organizations') }}
),

classified as (
    select
        *,
        direction = 'INBOUND' and author_kind = 'customer' as is_customer_message,
        direction = 'OUTBOUND' and author_kind = 'agent' and message_status <> 'FAILED' as is_human_reply
    from messages
),

with_cycle as (
    select m.*, coalesce(c.cycle_number, 0) + 1 as cycle_number
    from classified as m
    asof left join completions as c
        on c.conversation_id = m.conversation_id and m.sent_at > c.completed_at
),

with_assignee as (
    select
        m.*,
        case when a.ended_at is null or a.ended_at > m.sent_at then a.user_id end as assignee_user_id
    from with_cycle as m
    asof left join assignments as a
        on a.conversation_id = m.conversation_id and m.sent_at >= a.assigned_at
),

final as (
    select
        m.message_id,
        m.organization_id,
        m.conversation_id,
        m.channel_id,
        m.cycle_number,
        m.direction,
        m.author_kind,
        m.author_user_id,
        m.assignee_user_id,
        m.is_customer_message,
        m.is_human_reply,
        m.message_status,
        m.is_deleted,
        m.body_length_chars,
        m.sent_at,
        {{ local_time('m.sent_at', 'tz') }}::date as sent_local_date,
        extract(hour from {{ local_time('m.sent_at', 'tz') }})::int as sent_local_hour
    from with_assignee as m
    left join organizations as o on o.organization_id = m.organization_id
    {{ utc_offset_join('tz', 'm.sent_at', 'o.timezone') }}
)

select * from final
