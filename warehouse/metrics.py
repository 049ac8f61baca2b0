"""The metric catalogue (SPEC §4): the ONE place that names every metric, its label, unit and source.

Everything else is derived from here: the statistics the SQL models aggregate (the renderer's
``duration_stats`` macro, :mod:`warehouse.render`), the read API (:func:`warehouse.queries.time_metric_stats`
selects :data:`STATS` of a :class:`TimeMetric`'s column), the analytics page's labels and captions, the
notebooks and ``docs/warehouse.md``. Every time metric exists in wall-clock and business-hours form
(``<column>`` / ``<business_column>``, milliseconds) and is reported as a count plus each :data:`STATS`.
"""

from __future__ import annotations

from dataclasses import dataclass

# An ONLINE presence event counts until the agent's next presence event, at most this long. The app
# logs a presence event per state change and at most one per minute while the state holds; the
# sweeper marks a silent session AWAY after 2 minutes and OFFLINE after 5.
PRESENCE_GAP_CAP_SECONDS = 300

# Open conversations whose cycle started within this many days are recomputed on every incremental
# build, so that time-dependent columns (SLA "pending" → "breached", waiting times) stay current.
OPEN_CONVERSATION_LOOKBACK_DAYS = 14


@dataclass(frozen=True)
class Stat:
    """One statistic of a duration: how a manager reads it, and how SQL computes it."""

    name: str  # the read API's column: <name>_ms (count: count)
    label: str  # what the page shows
    column_prefix: str  # the daily marts' column: <prefix>_<metric stem>_ms
    sql: str  # the aggregate over ``{value}``, with ``{filter}`` (" filter (where …)" or "") after it
    description: str

    def render(self, value: str, where: str | None = None) -> str:
        """The SQL of this statistic over ``value`` (optionally only the rows where ``where`` holds)."""
        return self.sql.format(value=value, filter=f" filter (where {where})" if where else "")


# Median and 90th percentile are two elements of one aggregate: DuckDB computes identical aggregates of
# a select once, so both cost one collection and sort of the values instead of two (the page's period
# reads per agent or channel: ~2x faster at 10 M messages).
_QUANTILES = "(quantile_cont({value}, [0.5, 0.9]){filter})"


COUNT = Stat("count", "Count", "count", "count({value}){filter}", "how many values (occurrences with a duration)")
STATS: tuple[Stat, ...] = (
    Stat("mean", "Mean", "avg", "avg({value}){filter}", "the arithmetic mean"),
    Stat("median", "Median", "median", _QUANTILES + "[1]", "half of the values are at most this"),
    Stat("p90", "90th percentile", "p90", _QUANTILES + "[2]", "90 % of the values are at most this"),
    Stat("min", "Minimum", "min", "min({value}){filter}", "the shortest"),
    Stat("max", "Maximum", "max", "max({value}){filter}", "the longest"),
)
DURATION_UNIT = "ms"


@dataclass(frozen=True)
class TimeMetric:
    """A duration measured per occurrence (a cycle, a customer turn) in a row-level mart."""

    name: str
    label: str  # what a manager reads
    definition: str
    mart: str  # the row-level mart holding one value per occurrence
    column: str  # wall-clock milliseconds
    business_column: str  # business-hours milliseconds (current calendar)
    start_column: str
    end_column: str
    credited_to: str  # column naming the agent the value is credited to (email)
    day_column: str  # the organization's local day the value is reported on
    row_filter: str  # which rows of the mart are occurrences of this metric
    unit: str = DURATION_UNIT


TIME_METRICS: tuple[TimeMetric, ...] = (
    TimeMetric(
        "first_response", "First response time",
        "Per cycle: the cycle's first customer message → the first human agent message of that cycle; "
        "bot and system messages never count; credited to the agent who sent the reply.",
        "response_times", "response_ms", "response_business_ms", "turn_started_at", "responded_at",
        "responder_email", "responded_local_date", "is_first_response and responded_at is not null"),
    TimeMetric(
        "response", "Response time (every customer turn)",
        "Per customer turn (a run of customer messages not yet answered by a human agent): the turn's "
        "first message → the next human agent message, credited to whoever replied. Turns still "
        "unanswered when the cycle completed are counted as unanswered (is_unanswered), not dropped.",
        "response_times", "response_ms", "response_business_ms", "turn_started_at", "responded_at",
        "responder_email", "responded_local_date", "responded_at is not null"),
    TimeMetric(
        "queue", "Queue time (wait to accept)",
        "Per cycle: cycle start → the first time an agent took it (ACCEPTED, or REASSIGNED to them).",
        "conversation_cycles", "queue_ms", "queue_business_ms", "started_at", "accepted_at",
        "accepted_by_email", "started_local_date", "queue_ms is not null"),
    TimeMetric(
        "handle", "Handle time",
        "Per cycle: the start of the assignment that completed it (ACCEPTED / REASSIGNED) → COMPLETED, "
        "credited to that assignee.",
        "conversation_cycles", "handle_ms", "handle_business_ms", "final_assigned_at", "completed_at",
        "handled_by_email", "completed_local_date", "handle_ms is not null"),
    TimeMetric(
        "resolution", "Resolution time",
        "Per cycle: cycle start → the COMPLETED of the same cycle (never from conversation creation: a "
        "reopened conversation starts a new cycle).",
        "conversation_cycles", "resolution_ms", "resolution_business_ms", "started_at", "completed_at",
        "completed_by_email", "completed_local_date", "resolution_ms is not null"),
)

TIME_METRICS_BY_NAME = {m.name: m for m in TIME_METRICS}

VOLUME_METRICS: dict[str, str] = {
    "conversations_started": "cycles started (conversations created or reopened) — channel_daily_metrics",
    "conversations_accepted": "ACCEPTED events — agent_daily_metrics (by the accepting agent), channel_daily_metrics",
    "conversations_completed": "COMPLETED events — agent_daily_metrics (by the completing agent), channel_daily_metrics",
    "total_messages_received": "customer messages; per agent: those arriving while the agent held the conversation",
    "total_messages_sent": "human agent messages that did not fail (bot/system excluded)",
    "avg_message_length_chars": "mean length in characters of the human agent messages sent",
    "concurrent_peak": "per agent per day: most conversations assigned to the agent at the same moment",
    "total_online_minutes": "per agent per day: minutes ONLINE from presence events (heartbeats), split at local midnight",
    "sla": "share of cycles whose first response / resolution met the organization's targets (sla_daily); "
           "breaches are the conversation_cycles rows with *_sla_status = 'breached'",
    "live": "open conversations: unassigned (PENDING), unattended (a turn waiting for a reply), per-agent load "
            "with presence (live_queue)",
}

MARTS: dict[str, str] = {
    "conversation_cycles": "one row per conversation cycle (conversation_id, cycle_number)",
    "response_times": "one row per customer turn (conversation_id, cycle_number, turn_number)",
    "agent_daily_metrics": "one row per organization, agent and local day (organization_id, agent_user_id, metric_date)",
    "channel_daily_metrics": "one row per organization, channel and local day (organization_id, channel_id, metric_date)",
    "hourly_volume": "one row per organization, channel, local day and local hour",
    "sla_daily": "one row per organization, channel and local day of cycle start",
    "live_queue": "one row per open conversation as of the build",
    "time_metric_daily": "one row per organization, time metric, local day, channel (or all) and agent (or all): "
                         "the statistics of the page's per-day reads",
}


def stat_columns(stem: str, *, business: bool = True) -> list[str]:
    """The daily marts' statistic columns of a duration ``stem``: ``avg_<stem>_ms`` … (+ business)."""
    kinds = [DURATION_UNIT, f"business_{DURATION_UNIT}"] if business else [DURATION_UNIT]
    return [f"{s.column_prefix}_{stem}_{kind}" for kind in kinds for s in STATS]
