"""The daily ``cleanup`` flow's work: delete what retention no longer keeps, batch by batch.

Every purge of :mod:`switchboard.services.retention` runs again and again, one short transaction per
batch of at most ``batch`` rows, until a batch comes back short. Media files under the media directory
that no attachment references and that are older than ``media_grace_hours`` (an upload or download
being stored right now is younger) are deleted last. Returns the counts, recorded in ``pipeline_runs``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from switchboard import storage
from switchboard.clock import utcnow
from switchboard.services import retention
from switchboard.uow import UnitOfWork

Purge = Callable[..., int]

STEPS: dict[str, Purge] = {
    "login_state": retention.purge_login_state,
    "webhook_events": retention.purge_webhook_events,
    "event_deliveries": retention.purge_event_deliveries,
    "pipeline_runs": retention.purge_pipeline_runs,
    "platform_signals": retention.purge_finished_signals,
}


def drain(engine: Engine, purge: Purge, *, now: datetime, batch: int) -> int:
    """Run ``purge`` in committed batches of at most ``batch`` rows until one comes back short."""
    total = 0
    while True:
        with UnitOfWork(engine) as uow:
            done = purge(uow, now=now, limit=batch)
            uow.commit()
        total += done
        if done < batch:
            return total


def purge_media(engine: Engine, media_dir: Path, *, now: datetime, grace: timedelta,
                batch: int) -> dict[str, int]:
    """Delete the media files older than ``grace`` that no attachment references."""
    files = storage.files_older_than(media_dir, (now - grace).timestamp())
    removed = freed = 0
    while chunk := list(islice(files, batch)):
        with UnitOfWork(engine) as uow:
            used = retention.referenced_paths(uow, [str(p) for p in chunk])
        for path in chunk:
            if str(path) not in used:
                size = storage.remove_file(path)
                removed += 1
                freed += size
    return {"media_files": removed, "media_bytes": freed}


def cleanup_once(engine: Engine, media_dir: Path, *, now: datetime | None = None, media_grace_hours: float = 24,
                 batch: int = retention.BATCH) -> dict[str, Any]:
    """One cleanup run: every purge drained, then the unreferenced media files; the counts."""
    now = now or utcnow()
    counts: dict[str, Any] = {name: drain(engine, purge, now=now, batch=batch) for name, purge in STEPS.items()}
    counts.update(purge_media(engine, media_dir, now=now, grace=timedelta(hours=media_grace_hours), batch=batch))
    return counts
