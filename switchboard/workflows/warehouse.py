"""Warehouse builds outside the schedule, and the run record every build leaves.

* :func:`recorded` — run a step and keep its outcome in ``pipeline_runs`` (the flows, and these builds).
* :func:`build_when_free` — an incremental build now; when another build holds the lock, wait for it
  and build again (the running one may have read the data before the change that asked for this one).
* :func:`rebuild_in_background` — the same in a thread, for a page that must not wait: saving the
  business-hours calendar or the SLA targets rebuilds the warehouse so the figures follow at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine

from switchboard.services import runs
from switchboard.settings import Settings
from switchboard.uow import UnitOfWork

log = logging.getLogger(__name__)
T = TypeVar("T")
BUSY = "another warehouse build is running"


def recorded(engine: Engine, name: str, fn: Callable[[], T], summary: Callable[[T], dict[str, Any]], *,
             channel_id: int | None = None) -> T:
    """Run ``fn`` and record the run (ok/failed, summary, error) in pipeline_runs; a run about one
    channel belongs to its organization (its admins see its details)."""
    with UnitOfWork(engine) as uow:
        run_id = runs.start_run(uow, name, channel_id=channel_id)
        uow.commit()
    try:
        result = fn()
    except Exception as exc:
        with UnitOfWork(engine) as uow:
            runs.finish_run(uow, run_id, ok=False, error=f"{exc.__class__.__name__}: {exc}")
            uow.commit()
        raise
    with UnitOfWork(engine) as uow:
        runs.finish_run(uow, run_id, ok=True, detail=summary(result))
        uow.commit()
    return result


def build_summary(report: Any) -> dict[str, Any]:
    return {"full": report.full, "rows_extracted": report.rows_extracted, "seconds": round(report.seconds, 3)}


def build_when_free(engine: Engine, settings: Settings, *, reason: str, max_wait_seconds: float = 900,
                    poll_seconds: float = 5, sleep: Callable[[float], object] = time.sleep) -> dict[str, Any]:
    """An incremental build, recorded as ``warehouse-build`` with ``reason``; waits (up to
    ``max_wait_seconds``) while another build holds the lock, then builds. Returns the run's summary."""
    from switchboard.db.engine import database_url
    from warehouse.build import BuildError, build

    deadline = time.monotonic() + max_wait_seconds
    while True:
        try:
            report = recorded(engine, "warehouse-build",
                              lambda: build(database_url(settings), settings.warehouse_file,
                                            data_path=settings.warehouse_data_path,
                                            nice=settings.warehouse_build_nice),
                              lambda r: {**build_summary(r), "reason": reason})
            return {**build_summary(report), "reason": reason}
        except BuildError as exc:
            if BUSY not in str(exc) or time.monotonic() >= deadline:
                raise
            sleep(poll_seconds)


def rebuild_in_background(engine: Engine, settings: Settings, *, reason: str) -> threading.Thread | None:
    """:func:`build_when_free` in a daemon thread, if a warehouse was built at all (None otherwise: the
    first build is the operator's or the schedule's); a failure is in pipeline_runs (Channels & health)
    and the log."""
    from warehouse.errors import WarehouseNotBuilt
    from warehouse.lake import read_pointer

    try:
        read_pointer(settings.warehouse_file)
    except WarehouseNotBuilt:
        return None

    def run() -> None:
        try:
            build_when_free(engine, settings, reason=reason)
        except Exception:
            log.exception("warehouse rebuild (%s) failed", reason)

    thread = threading.Thread(target=run, name="warehouse-rebuild", daemon=True)
    thread.start()
    return thread
