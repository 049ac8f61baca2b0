"""Presence sweep, auto-assignment, forgetting day-old API idempotency records and merging the
message search index's pending trigrams (the ``maintain-inbox`` flow's work)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from switchboard.clock import utcnow
from switchboard.uow import UnitOfWork


def maintain_once(engine: Engine, *, now: datetime | None = None, away_after_s: int = 120,
                  offline_grace_s: int = 300) -> dict[str, Any]:
    """Presence sweep, then auto-assignment for organizations that turned it on; old read marks and
    typing indicators are purged, API idempotency records older than 24 hours dropped, and the
    pending list of the message body trigram index merged (see :mod:`switchboard.services.search_index`)."""
    from switchboard.services.api_keys import forget_old_responses
    from switchboard.services.assignment import assign_pending
    from switchboard.services.organizations import auto_assign_organization_ids
    from switchboard.services.platform_signals import purge_signals
    from switchboard.services.presence import sweep
    from switchboard.services.search_index import merge_pending

    now = now or utcnow()
    with UnitOfWork(engine) as uow:
        released = sweep(uow, now=now, away_after_s=away_after_s, offline_grace_s=offline_grace_s)
        uow.commit()
    assigned: list[tuple[int, int]] = []
    with UnitOfWork(engine) as uow:
        org_ids = auto_assign_organization_ids(uow)
    for org_id in org_ids:
        with UnitOfWork(engine) as uow:
            assigned.extend(assign_pending(uow, org_id, now=now))
            uow.commit()
    with UnitOfWork(engine) as uow:
        purged = purge_signals(uow, now=now)
        forgotten = forget_old_responses(uow, now)
        uow.commit()
    with UnitOfWork(engine) as uow:
        merged = merge_pending(uow)
        uow.commit()
    return {"released": len(released), "assigned": len(assigned), "signals_purged": purged,
            "idempotency_forgotten": forgotten, "search_pages_merged": merged}
