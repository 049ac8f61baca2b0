-- One row per organization, channel and local day of cycle start: how many cycles met the
-- organization's first-response and resolution targets (wall clock and business hours).
-- Shares are over decided cycles (met + breached + unanswered); pending ones are counted apart.
with cycles as (
    select * from {{ ref('conversation_cycles') }}
),

aggregated as (
    select
        organization_id,
        channel_id,
        any_value(channel_name) as channel_name,
        started_local_date as metric_date,
        count(*) as count_cycles,
        any_value(sla_first_response_ms) as sla_first_response_ms,
        any_value(sla_resolution_ms) as sla_resolution_ms,
        count(*) filter (where first_response_sla_status = 'met') as count_first_response_met,
        count(*) filter (where first_response_sla_status = 'breached') as count_first_response_breached,
        count(*) filter (where first_response_sla_status = 'unanswered') as count_first_response_unanswered,
        count(*) filter (where first_response_sla_status = 'pending') as count_first_response_pending,
        count(*) filter (where first_response_business_sla_status = 'met') as count_first_response_business_met,
        count(*) filter (where first_response_business_sla_status in ('breached', 'unanswered')) as count_first_response_business_missed,
        count(*) filter (where resolution_sla_status = 'met') as count_resolution_met,
        count(*) filter (where resolution_sla_status = 'breached') as count_resolution_breached,
        count(*) filter (where resolution_sla_status = 'pending') as count_resolution_pending,
        count(*) filter (where resolution_business_sla_status = 'met') as count_resolution_business_met,
        count(*) filter (where resolution_business_sla_status = 'breached') as count_resolution_business_breached
    from cycles
    where {{ key_filter('conversation_cycles', 'organization_id', 'channel_id', 'started_local_date') }}
    group by organization_id, channel_id, started_local_date
),

final as (
    select
        *,
        count_first_response_met / nullif(count_first_response_met + count_first_response_breached
            + count_first_response_unanswered, 0) as first_response_sla_share,
        count_first_response_business_met / nullif(count_first_response_business_met
            + count_first_response_business_missed, 0) as first_response_business_sla_share,
        count_resolution_met / nullif(count_resolution_met + count_resolution_breached, 0) as resolution_sla_share,
        count_resolution_business_met / nullif(count_resolution_business_met
            + count_resolution_business_breached, 0) as resolution_business_sla_share
    from aggregated
)

select * from final
