-- One row per organization, time metric (warehouse.metrics.TIME_METRICS), local day, channel and agent,
-- plus the rollups over all channels and/or all agents (grouping sets; is_all_channels /
-- is_all_agents, channel_id / agent_email NULL there): count, mean, median, p90, min and max of the
-- metric's values, wall clock and business hours. Medians and percentiles cannot be summed, so each
-- grain the analytics page filters on is aggregated from the rows: the per-day figures of the page
-- (all channels or one, all agents or one) read ~30 rows here instead of millions of turns. Turn
-- counts add up, so they stay in channel_daily_metrics.
-- Key: (organization, local day) — a changed occurrence recomputes every row of its day (the
-- rollups of that day depend on every channel and agent).
-- The occurrences: one union all branch per catalogue metric, written out from the catalogue when the
-- model is loaded (metric_occurrences in warehouse/render.py: its mart, row filter and day column).
with occurrences as (
    {{ metric_occurrences() }}
),

stats as (
    select
        organization_id,
        metric,
        metric_date,
        channel_id,
        agent_email,
        grouping(channel_id) = 1 as is_all_channels,
        grouping(agent_email) = 1 as is_all_agents,
        {{ duration_stats('value_ms', 'value', count='count_values', business=False) }},
        {{ duration_stats('value_business_ms', 'value_business', count='count_business_values', business=False) }}
    from occurrences
    group by grouping sets (
        (organization_id, metric, metric_date),
        (organization_id, metric, metric_date, channel_id),
        (organization_id, metric, metric_date, agent_email),
        (organization_id, metric, metric_date, channel_id, agent_email)
    )
),

final as (
    select * from stats
)

select * from final
