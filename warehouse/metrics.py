"""Metric definitions (SPEC §4): one place that names every metric, its grain, mart and columns.

The SQL models compute them; the app, the notebooks and ``docs/warehouse.md`` describe them from here.
Every time metric exists in wall-clock and business-hours form (``<col>`` / ``<business_col>``) and is
reported as count, mean, median, p90, min and max (:data:`STATS`).
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

STATS = ("count", "mean", "median", "p90", "min", "max")


@dataclass(frozen=True)
class TimeMetric:
    name: str
    label: str
    definition: str
    mart: str  # the row-level mart holding one value per occurrence
    column: str  # wall-clock milliseconds
    business_column: str  # business-hours milliseconds (current calendar)
    start_column: str
    end_column: str
    credited_to: str | None = None  # column naming the agent the value is credited to


TIME_METRICS: tuple[TimeMetric, ...] = (
    TimeMetric(
        "first_response", "First response time",
        "Per cycle: the cycle's first customer message → the first human agent message of that cycle; "
        "bot and system messages never count; credited to the agent who sent the reply.",
        "conversation_cycles", "first_response_ms", "first_response_business_ms",
        "started_at", "first_response_at", "first_responder_email"),
    TimeMetric(
        "response", "Response time",
        "Per customer turn (a run of customer messages not yet answered by a human agent): the turn's "
        "first message → the next human agent message, credited to whoever replied. Turns still "
        "unanswered when the cycle completed are counted as unanswered (is_unanswered), not dropped.",
        "response_times", "response_ms", "response_business_ms",
        "turn_started_at", "responded_at", "responder_email"),
    TimeMetric(
        "queue", "Queue (wait-to-accept) time",
        "Per cycle: cycle start → the first time an agent took it (ACCEPTED, or REASSIGNED to them).",
        "conversation_cycles", "queue_ms", "queue_business_ms", "started_at", "accepted_at",
        "accepted_by_email"),
    TimeMetric(
        "handle", "Handle time",
        "Per cycle: the start of the assignment that completed it (ACCEPTED / REASSIGNED) → COMPLETED, "
        "credited to that assignee.",
        "conversation_cycles", "handle_ms", "handle_business_ms", "final_assigned_at", "completed_at",
        "handled_by_email"),
    TimeMetric(
        "resolution", "Resolution time",
        "Per cycle: cycle start → the COMPLETED of the same cycle (never from conversation creation: a "
        "reopened conversation starts a new cycle).",
        "conversation_cycles", "resolution_ms", "resolution_business_ms", "started_at", "completed_at",
        "completed_by_email"),
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
}
