-- Online time per agent and local day from presence events (changes and heartbeats): an ONLINE
-- event counts until the agent's next presence event, at most {{ var('presence_gap_cap_seconds') }} s
-- (a silent client is not online forever), and until the build's as-of time for the latest one.
-- Spans are split at local midnight. Incrementally, an agent's days are recomputed from the day
-- before the UTC day of its earliest changed presence event (`since`; spans last minutes).
with presence as (
    select p.*, s.since_date
    from {{ ref('stg_presence_events') }} as p
    inner join {{ key_since('stg_presence_events', 'organization_id', 'user_id', 'occurred_at::date - 1') }} as s
        on s.organization_id = p.organization_id and s.entity_id = p.user_id
    -- every event whose span can reach the local day since_date (spans last minutes), and all later ones
    -- (since_bound: the build's earliest since_at, a constant that lets the scan skip old row groups)
    where p.occurred_at >= s.since_at and {{ since_bound('p.occurred_at') }}
),

organizations as (
    select organization_id, timezone from {{ ref('stg_organizations') }}
),

build_info as (
    select as_of from {{ source('build_info') }}
),

spans as (
    select
        organization_id,
        user_id,
        since_date,
        presence_state,
        occurred_at as started_at,
        least(
            coalesce(lead(occurred_at) over w, (select as_of from build_info)),
            occurred_at + to_seconds({{ var('presence_gap_cap_seconds') }})
        ) as ended_at
    from presence
    window w as (partition by user_id order by occurred_at, presence_event_id)
),

online as (
    select * from spans where presence_state = 'ONLINE' and ended_at > started_at
),

localized as (
    select
        s.organization_id,
        s.user_id,
        s.since_date,
        {{ local_time('s.started_at', 't1') }} as started_local_at,
        {{ local_time('s.ended_at', 't2') }} as ended_local_at
    from online as s
    left join organizations as o on o.organization_id = s.organization_id
    {{ utc_offset_join('t1', 's.started_at', 'o.timezone') }}
    {{ utc_offset_join('t2', 's.ended_at', 'o.timezone') }}
),

per_day as (
    select
        organization_id,
        user_id,
        since_date,
        d::date as metric_date,
        epoch_ms(least(ended_local_at, d + interval 1 day)) - epoch_ms(greatest(started_local_at, d)) as online_ms
    from localized,
        unnest(generate_series(started_local_at::date::timestamp, ended_local_at::date::timestamp, interval 1 day)) as u(d)
),

final as (
    select
        organization_id,
        user_id,
        metric_date,
        round(sum(online_ms) / 60000.0, 2) as total_online_minutes
    from per_day
    where online_ms > 0 and metric_date >= since_date
    group by organization_id, user_id, metric_date
)

select * from final
