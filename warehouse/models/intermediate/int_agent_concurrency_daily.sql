-- Peak number of conversations assigned to an agent at once, per local day. Assignments start and
-- end as events; the level just before an event held since the previous one, so the day's peak is
-- the maximum of the level before and after each of its events (ends sort before starts at ties).
-- Incrementally, an agent's days are recomputed from the earliest day of its changed assignments
-- (`since`), starting from the level left by the assignment events before that day.
with assignments as (
    select * from {{ ref('int_assignments') }}
),

since as (
    select organization_id, entity_id as user_id, since_date, since_at
    from {{ key_since('int_assignments', 'organization_id', 'user_id', 'assigned_local_at::date') }}
),

points as not materialized (
    select organization_id, user_id, assigned_at as point_at, assigned_local_at as local_at, 1 as delta
    from assignments
    union all
    select organization_id, user_id, ended_at as point_at, ended_local_at as local_at, -1 as delta
    from assignments
    where ended_at is not null
),

base as (
    select p.user_id, sum(p.delta)::bigint as level_base
    from points as p
    inner join since as s on s.organization_id = p.organization_id and s.user_id = p.user_id
    where p.point_at < s.since_at
    group by p.user_id
),

levels as (
    select
        p.*,
        s.since_date,
        coalesce(b.level_base, 0) + (sum(p.delta) over w)::bigint as level_after
    from points as p
    inner join since as s on s.organization_id = p.organization_id and s.user_id = p.user_id
    left join base as b on b.user_id = p.user_id
    where p.point_at >= s.since_at
    window w as (partition by p.user_id order by p.point_at, p.delta rows between unbounded preceding and current row)
),

with_before as (
    select *, level_after - delta as level_before from levels
),

final as (
    select
        organization_id,
        user_id,
        local_at::date as metric_date,
        max(greatest(level_before, level_after)) as concurrent_peak
    from with_before
    where local_at is not null and local_at::date >= since_date
    group by organization_id, user_id, local_at::date
)

select * from final
