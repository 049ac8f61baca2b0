-- Peak number of conversations assigned to an agent at once, per local day. Assignments start and
-- end as events; the level just before an event held since the previous one, so the day's peak is
-- the maximum of the level before and after each of its events (ends sort before starts at ties).
with assignments as (
    select * from {{ ref('int_assignments') }}
),

points as (
    select organization_id, user_id, assigned_at as point_at, assigned_local_at as local_at, 1 as delta
    from assignments
    union all
    select organization_id, user_id, ended_at as point_at, ended_local_at as local_at, -1 as delta
    from assignments
    where ended_at is not null
),

levels as (
    select
        *,
        (sum(delta) over w)::bigint as level_after
    from points
    window w as (partition by user_id order by point_at, delta rows between unbounded preceding and current row)
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
    where local_at is not null
    group by organization_id, user_id, local_at::date
)

select * from final
