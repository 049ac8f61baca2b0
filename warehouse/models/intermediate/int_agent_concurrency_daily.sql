-- Peak number of conversations assigned to an agent at once, per local day, and the number still
-- assigned at the end of the day. Assignments start and end as events; the level just before an event
-- held since the previous one, so the day's peak is the maximum of the level before and after each of
-- its events. Events are ordered by local day, then time (ends sort before starts at ties).
-- Incrementally, an agent's days are recomputed from the earliest day of its changed assignments
-- (`since_date`), starting from the level at the end of its last day before it — this model's own
-- previous row (`carried`), so the cost follows the recomputed days, not the agent's history.
with assignments as not materialized (
    select * from {{ ref('int_assignments') }}
),

since as (
    select organization_id, entity_id as user_id, since_date, since_at, coalesce(carried, 0)::bigint as level_carried
    from {{ key_since('int_assignments', 'organization_id', 'user_id', 'assigned_local_at::date',
                      carry='open_assignments_at_end') }}
),

-- every event of a recomputed day (since_at: safely before since_date starts; since_bound: the
-- earliest since_at of the build, a constant that lets the scans skip old row groups)
points as not materialized (
    select organization_id, user_id, assigned_at as point_at, assigned_local_at as local_at, 1 as delta
    from assignments
    where {{ since_bound('assigned_at') }}
    union all
    select organization_id, user_id, ended_at as point_at, ended_local_at as local_at, -1 as delta
    from assignments
    where ended_at is not null and {{ since_bound('ended_at') }}
),

levels as (
    select
        p.organization_id,
        p.user_id,
        p.local_at::date as metric_date,
        p.delta,
        s.level_carried + (sum(p.delta) over w)::bigint as level_after,
        row_number() over w as event_number
    from points as p
    inner join since as s on s.organization_id = p.organization_id and s.user_id = p.user_id
    where p.point_at >= s.since_at and p.local_at::date >= s.since_date
    window w as (partition by p.user_id order by p.local_at::date, p.point_at, p.delta
                 rows between unbounded preceding and current row)
),

final as (
    select
        organization_id,
        user_id,
        metric_date,
        max(greatest(level_after - delta, level_after)) as concurrent_peak,
        arg_max(level_after, event_number) as open_assignments_at_end
    from levels
    group by organization_id, user_id, metric_date
)

select * from final
