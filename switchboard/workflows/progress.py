"""Report a sync's progress: stored for Channels & health, then handed to the caller's callback."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine

from switchboard.clock import utcnow
from switchboard.services.sync_progress import Progress, ProgressCallback, record_progress
from switchboard.uow import UnitOfWork

log = logging.getLogger(__name__)


def notify(on_progress: ProgressCallback | None, progress: Progress) -> None:
    """Hand ``progress`` to the callback (after its batch committed); a failing callback (a Prefect
    artifact the API refused) is logged, never fatal to the sync."""
    if on_progress is None:
        return
    try:
        on_progress(progress)
    except Exception:
        log.exception("progress callback failed for channel %s", progress.channel_id)


def report_progress(engine: Engine, on_progress: ProgressCallback | None, progress: Progress, *,
                    now: datetime | None = None) -> None:
    """Store ``progress`` in its own transaction (the start and the end of a run), then notify."""
    with UnitOfWork(engine) as uow:
        record_progress(uow, progress, now=now or utcnow())
        uow.commit()
    notify(on_progress, progress)
