"""Flow runs as seen by the product: for `GET /health`, `switchboard status` and the admin view.

A run that concerns one channel (a Telegram channel's sync) belongs to the channel's organization;
the others (the outbox, webhook processing, …) are installation-wide and work for every organization,
so their details and errors (which may name any organization's channels and customers) are for the
operator: an organization's admins see them with their status and times only (:func:`redacted`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, insert, or_, select, update

from switchboard.clock import utcnow
from switchboard.db.schema import Channel, PipelineRun
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
    organization_id: int | None = None


INSTALLATION_WIDE = "installation-wide run: its details are for the operator (`switchboard status`)"


def _view(r: PipelineRun) -> RunView:
    return RunView(r.id, r.name, r.status, r.started_at, r.finished_at, r.detail, r.error, r.organization_id)


def redacted(run: RunView) -> RunView:
    """An installation-wide run as an organization's admins see it: status and times, no details."""
    if run.organization_id is not None:
        return run
    return RunView(run.id, run.name, run.status, run.started_at, run.finished_at, {},
                   INSTALLATION_WIDE if run.status == "failed" else None, None)


def start_run(uow: UnitOfWork, name: str, now: datetime | None = None, *, channel_id: int | None = None) -> int:
    """A run starts; one that concerns a channel belongs to the channel's organization."""
    org = (select(Channel.organization_id).where(Channel.id == channel_id).scalar_subquery()
           if channel_id is not None else None)
    run_id = uow.session.execute(
        insert(PipelineRun).values(name=name, started_at=now or utcnow(), status="running", organization_id=org)
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


def _seen_by(organization_id: int | None) -> ColumnElement[bool]:
    """Every run (None: the operator), or an organization's own runs and the installation-wide ones."""
    if organization_id is None:
        return PipelineRun.id.is_not(None)
    return or_(PipelineRun.organization_id == organization_id, PipelineRun.organization_id.is_(None))


def last_runs(uow: UnitOfWork, organization_id: int | None = None) -> list[RunView]:
    """The latest run of every flow name (seen by one organization: never another's runs; callers
    showing them to its admins pass them through :func:`redacted`)."""
    latest = (
        select(PipelineRun.name, func.max(PipelineRun.id).label("id")).where(_seen_by(organization_id))
        .group_by(PipelineRun.name).subquery()
    )
    rows = uow.session.execute(
        select(PipelineRun).join(latest, latest.c.id == PipelineRun.id).order_by(PipelineRun.name)
    ).scalars()
    return [_view(r) for r in rows]


def recent_failures(uow: UnitOfWork, limit: int = 50, organization_id: int | None = None) -> list[RunView]:
    rows = uow.session.execute(
        select(PipelineRun).where(PipelineRun.status == "failed", _seen_by(organization_id))
        .order_by(PipelineRun.id.desc()).limit(limit)
    ).scalars()
    return [_view(r) for r in rows]


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
