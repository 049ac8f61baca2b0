"""Retention: what the daily ``cleanup`` flow deletes, in bounded batches (issue 14).

Each function deletes at most ``limit`` rows in one statement and returns how many it deleted; the
workflow (:mod:`switchboard.workflows.retention`) calls it again, one short transaction per batch,
until a batch comes back short — never one huge transaction. The days come from each organization's
settings (``organizations.retention_*``, edited on the Organization page); rows of no organization
(installation-wide runs, deliveries to an unknown channel) use the defaults below. Operator
maintenance, like the presence sweep: no actor, no audit entry (the run's counts are recorded in
``pipeline_runs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import TextClause, text

from switchboard.uow import UnitOfWork

# the defaults of the organization columns (schema.py), used for rows that belong to no organization
DEFAULT_DAYS = {"retention_webhook_days": 30, "retention_webhook_failed_days": 180,
                "retention_runs_days": 90, "retention_signals_days": 7}
BATCH = 1000

# ended sessions and invites stay a week, so that a late click still gets its precise sentence
# ("signed out: …", "invite link already used") rather than "unknown"
ENDED_GRACE_DAYS = 7
_SESSIONS = text("""
    delete from login_sessions where id in (
        select id from login_sessions where least(expires_at, revoked_at) < :before order by id limit :limit)
""")
_INVITES = text("""
    delete from invites where id in (
        select id from invites where least(expires_at, used_at) < :before order by id limit :limit)
""")
# deliveries still to process (RECEIVED) are never deleted; rejected and failed ones are kept longer
_WEBHOOKS = text("""
    delete from webhook_events where id in (
        select w.id from webhook_events w
        left join channels c on c.id = w.channel_id
        left join organizations o on o.id = c.organization_id
        where w.status <> 'RECEIVED'
          and w.received_at < :now - make_interval(days => case when w.status in ('REJECTED', 'FAILED')
                  then coalesce(o.retention_webhook_failed_days, :failed_days)
                  else coalesce(o.retention_webhook_days, :days) end)
        order by w.id limit :limit)
""")
# outgoing event webhook deliveries (their attempts go with them): delivered ones as long as processed
# incoming deliveries, failed ones as long as failed incoming ones; pending ones never
_EVENT_DELIVERIES = text("""
    delete from event_deliveries where id in (
        select d.id from event_deliveries d join organizations o on o.id = d.organization_id
        where d.status <> 'PENDING'
          and d.created_at < :now - make_interval(days => case when d.status = 'FAILED'
                  then o.retention_webhook_failed_days else o.retention_webhook_days end)
        order by d.id limit :limit)
""")
# the latest run of each flow (per organization) is always kept: /health and the admin view show it
_RUNS = text("""
    delete from pipeline_runs where id in (
        select r.id from pipeline_runs r
        left join organizations o on o.id = r.organization_id
        where r.status <> 'running'
          and r.started_at < :now - make_interval(days => coalesce(o.retention_runs_days, :days))
          and exists (select 1 from pipeline_runs n where n.name = r.name and n.id > r.id
                      and n.organization_id is not distinct from r.organization_id)
        order by r.id limit :limit)
""")
_SIGNALS = text("""
    delete from platform_signals where id in (
        select s.id from platform_signals s join organizations o on o.id = s.organization_id
        where s.status <> 'PENDING'
          and coalesce(s.done_at, s.created_at) < :now - make_interval(days => o.retention_signals_days)
        order by s.id limit :limit)
""")


def affected(uow: UnitOfWork, statement: TextClause, params: dict[str, Any]) -> int:
    """Run one statement; the number of rows it changed."""
    result: Any = uow.session.execute(statement, params)
    return int(result.rowcount or 0)


def purge_login_state(uow: UnitOfWork, *, now: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` login sessions, then invites, that expired or ended (revoked, used) more
    than :data:`ENDED_GRACE_DAYS` ago."""
    before = now - timedelta(days=ENDED_GRACE_DAYS)
    done = affected(uow, _SESSIONS, {"before": before, "limit": limit})
    return done + affected(uow, _INVITES, {"before": before, "limit": max(limit - done, 0)})


def purge_webhook_events(uow: UnitOfWork, *, now: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` processed/ignored deliveries (and rejected/failed ones) past retention."""
    return affected(uow, _WEBHOOKS, {"now": now, "limit": limit, "days": DEFAULT_DAYS["retention_webhook_days"],
                                 "failed_days": DEFAULT_DAYS["retention_webhook_failed_days"]})


def purge_event_deliveries(uow: UnitOfWork, *, now: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` delivered / failed outgoing event webhook deliveries past retention."""
    return affected(uow, _EVENT_DELIVERIES, {"now": now, "limit": limit})


def purge_pipeline_runs(uow: UnitOfWork, *, now: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` finished pipeline runs past retention (the latest of each flow is kept)."""
    return affected(uow, _RUNS, {"now": now, "limit": limit, "days": DEFAULT_DAYS["retention_runs_days"]})


def purge_finished_signals(uow: UnitOfWork, *, now: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` sent or failed read marks / typing indicators past retention."""
    return affected(uow, _SIGNALS, {"now": now, "limit": limit})


def referenced_paths(uow: UnitOfWork, paths: Sequence[str]) -> set[str]:
    """Which of these media files an attachment still references (``attachments.local_path``)."""
    if not paths:
        return set()
    rows = uow.session.execute(text("select distinct local_path from attachments where local_path = any(:paths)"),
                               {"paths": list(paths)})
    return {str(r[0]) for r in rows}
