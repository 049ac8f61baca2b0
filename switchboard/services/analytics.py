"""Analytics reads for managers and admins: the warehouse, behind the access policy.

The analytics page (and any future entrypoint) gets an :class:`AnalyticsReader` only through
:func:`analytics_reader`, which checks :attr:`Action.VIEW_ANALYTICS` for the actor as the database
knows it now; the reader is bound to that actor's organization, so every read is that organization's
rows and nobody else's. Reads go to the warehouse (:mod:`warehouse.queries`), never to Postgres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchboard.policy import Action, require
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from warehouse import queries

# the organization-scoped reads of warehouse.queries: (path, organization id, …) → DataFrame. Reads that
# return one row per turn or cycle of a whole period (time_metric_values, response_time_rows,
# conversation_cycles: millions of rows at 10 M messages) are for notebooks, not for the app; the app
# lists cycles through cycle_rows with a limit and cycle_count.
ORGANIZATION_READS = frozenset({
    "channels", "agents", "time_metric_stats", "response_times", "agent_daily", "channel_daily", "hourly_volume",
    "sla_daily", "sla_breaches", "live_queue", "live_queue_counts", "agent_load", "time_metric_distribution",
    "time_metric_stats_many", "cycle_rows", "cycle_count", "headline",
})


@dataclass(frozen=True)
class AnalyticsReader:
    """The warehouse reads of one organization, for an actor allowed to read analytics."""

    organization_id: int
    warehouse_path: Path

    def read(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``queries.<name>(path, organization_id, *args, **kwargs)`` for an organization-scoped read."""
        if name not in ORGANIZATION_READS:
            raise ValueError(f"{name!r} is not an analytics read; choose one of {', '.join(sorted(ORGANIZATION_READS))}")
        return getattr(queries, name)(self.warehouse_path, self.organization_id, *args, **kwargs)

    def build_state(self) -> dict[str, Any]:
        """When the warehouse was built ({} if it has no state); no organization data."""
        return queries.build_state(self.warehouse_path)


def analytics_reader(uow: UnitOfWork, actor: Actor, warehouse_path: Path) -> AnalyticsReader:
    """The actor's organization's analytics; PermissionDenied unless the actor's current role allows them."""
    me = require(uow, actor, Action.VIEW_ANALYTICS)
    return AnalyticsReader(int(me.organization_id), Path(warehouse_path))
