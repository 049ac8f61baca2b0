-- The rows of stg_presence_events that changed in this build (it is a view over an append-only raw
-- table, so the runner cannot diff it): the new events (_extracted_presence_events, filled by the
-- extract), the event before each agent's first new one (its span now ends at the new one) and each
-- agent's latest event (its span runs to the build's as-of time).
with new as (
    select * from stg_presence_events
    where presence_event_id in (select id from _extracted_presence_events)
),

first_new as (
    select user_id, min(occurred_at) as first_at from new group by user_id
),

previous as (
    select p.* from stg_presence_events as p
    inner join first_new as f on f.user_id = p.user_id and p.occurred_at <= f.first_at
    where p.presence_event_id not in (select id from _extracted_presence_events)
    qualify row_number() over (partition by p.user_id order by p.occurred_at desc, p.presence_event_id desc) = 1
),

latest as (
    select * from stg_presence_events
    qualify row_number() over (partition by user_id order by occurred_at desc, presence_event_id desc) = 1
)

select * from new
union all select * from previous
union all select * from latest
