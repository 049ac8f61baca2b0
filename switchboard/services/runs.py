"""Flow runs as seen by the product: for `GET /health` and the operator's admin view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from switchboard.clock import utcnow
from switchboard.db.schema import PipelineRun
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class RunView:
    id: int
    name: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    detail: dict[str, Any]
    error: str | None


def start_run(uow: UnitOfWork, name: str, now: datetime | None = None) -> int:
    run_id = uow.session.execute(
        insert(PipelineRun).values(name=name, started_at=now or utcnow(), status="running")
        .returning(PipelineRun.id)
    ).scalar_one()
    return int(run_id)


def finish_run(uow: UnitOfWork, run_id: int, *, ok: bool, detail: dict[str, Any] | None = None,
               error: str | None = None, now: datetime | None = None) -> None:
    uow.session.execute(
        update(PipelineRun).where(PipelineRun.id == run_id).values(
            status="ok" if ok else "failed", finished_at=now or utcnow(), detail=detail or {}, error=error
        )
    )


def last_runs(uow: UnitOfWork) -> list[RunView]:
    """The latest run of every flow name."""
    latest = (
        select(PipelineRun.name, func.max(PipelineRun.id).label("id")).group_by(PipelineRun.name).subquery()
    )
    rows = uow.session.execute(
        select(PipelineRun).join(latest, latest.c.id == PipelineRun.id).order_by(PipelineRun.name)
    ).scalars()
    return [RunView(r.id, r.name, r.status, r.started_at, r.finished_at, r.detail, r.error) for r in rows]


def recent_failures(uow: UnitOfWork, limit: int = 50) -> list[RunView]:
    rows = uow.session.execute(
        select(PipelineRun).where(PipelineRun.status == "failed").order_by(PipelineRun.id.desc()).limit(limit)
    ).scalars()
    return [RunView(r.id, r.name, r.status, r.started_at, r.finished_at, r.detail, r.error) for r in rows]


def mark_interrupted(uow: UnitOfWork, *, older_than: timedelta = timedelta(minutes=10),
                     now: datetime | None = None) -> int:
    """Runs still 'running' after ``older_than`` belong to a worker that died: mark them failed."""
    now = now or utcnow()
    result = uow.session.execute(
        update(PipelineRun)
        .where(PipelineRun.status == "running", PipelineRun.started_at <= now - older_than)
        .values(status="failed", finished_at=now, error="interrupted: the worker stopped during the run")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
