"""`switchboard worker`: serve every flow with its schedule against a Prefect API server.

Schedules only fire on a real Prefect API server (not the ephemeral one), so the worker refuses to
start without `PREFECT_API_URL`; `switchboard demo` starts a server on the embedded PostgreSQL.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from switchboard.errors import SwitchboardError

# name -> ("module:flow", interval seconds, parameters)
SCHEDULES: dict[str, tuple[str, int, dict[str, Any]]] = {
    "process-webhooks": ("pipelines.flows:process_webhooks_flow", 60, {"max_seconds": 55.0}),
    "send-outbox": ("pipelines.flows:send_outbox_flow", 60, {"max_seconds": 55.0}),
    "send-signals": ("pipelines.platform_flows:send_signals_flow", 60, {"max_seconds": 55.0}),
    "maintain-inbox": ("pipelines.flows:maintain_flow", 30, {}),
    "deliver-event-webhooks": ("pipelines.flows:deliver_event_webhooks_flow", 60, {"max_seconds": 55.0}),
    "warehouse-build": ("pipelines.flows:warehouse_build_flow", 300, {"full": False}),
    "warehouse-maintain": ("pipelines.flows:warehouse_maintain_flow", 3600, {}),
    "download-media": ("pipelines.platform_flows:download_media_flow", 60, {}),
    "telegram-sync": ("pipelines.platform_flows:telegram_sync_flow", 120, {}),
    "meta-history-sync": ("pipelines.platform_flows:meta_history_flow", 600, {}),
    "sync-templates": ("pipelines.platform_flows:sync_templates_flow", 3600, {}),
    "check-credentials": ("pipelines.platform_flows:check_credentials_flow", 6 * 3600, {}),
    "cleanup": ("pipelines.flows:cleanup_flow", 24 * 3600, {}),
    "telegram-listeners": ("pipelines.platform_flows:telegram_listeners_flow", 300, {"max_seconds": 290.0}),
}


def intervals() -> dict[str, int]:
    """Each scheduled flow's interval in seconds (the warehouse build's from the settings)."""
    from switchboard.settings import get_settings

    out = {name: interval for name, (_, interval, _) in SCHEDULES.items()}
    out["warehouse-build"] = get_settings().warehouse_build_interval_seconds
    return out


def deployments(**options: Any) -> list[Any]:
    """Every scheduled flow as a Prefect deployment (``options`` go to ``Flow.to_deployment``: a work
    pool, queue and entrypoint type for `switchboard deploy`)."""
    out = []
    every = intervals()
    for name, (target, _, params) in SCHEDULES.items():
        interval = every[name]
        module, _, attr = target.partition(":")
        fl = getattr(importlib.import_module(module), attr)
        # No Prefect concurrency limit: a worker killed mid-run leaves a "Running" zombie that would
        # hold the slot forever. Overlapping runs are safe instead (SKIP LOCKED claims, leases).
        out.append(fl.to_deployment(name=name, interval=interval, parameters=params, **options))
    return out


def require_api_server() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise SwitchboardError(
            "PREFECT_API_URL is not set: scheduled flows only run against a Prefect API server. Start one "
            "with `prefect server start` (or use `switchboard demo`, which starts one) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api."
        )


MISSED_PAGE = 200  # scheduled runs read per request while skipping missed ones (the API's maximum)


def skip_missed_runs(names: Sequence[str] = tuple(SCHEDULES), *, now: datetime | None = None) -> int:
    """Runs of these deployments that came due while no worker served them — the server keeps
    scheduling while the worker is stopped, so a restart after 20 minutes found ~40 late runs and
    started them all at once (a 2-core machine at load 50, a reply waiting 2 minutes to go out). Every
    flow here catches up its whole backlog in one run, so per deployment the newest missed run is kept
    and the older ones are cancelled (never started: nothing to undo). Returns how many were cancelled."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.states import Cancelled

    due = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                        expected_start_time=FlowRunFilterExpectedStartTime(
                            before_=now or datetime.now(UTC)))  # type: ignore[arg-type]  # pydantic coerces
    ours = DeploymentFilter(name=DeploymentFilterName(any_=list(names)))
    kept: dict[Any, Any] = {}  # deployment id -> its newest missed run, left to run
    cancelled = 0
    with get_client(sync_client=True) as client:
        while True:  # newest first; a cancelled run leaves the filter, so each pass reads the next ones
            before = cancelled
            for run in client.read_flow_runs(flow_run_filter=due, deployment_filter=ours,
                                             sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                                             limit=MISSED_PAGE):
                if kept.setdefault(run.deployment_id, run.id) == run.id:
                    continue
                client.set_flow_run_state(run.id, Cancelled(
                    message="missed while no worker ran; a newer run of the same flow catches up"), force=True)
                cancelled += 1
            if cancelled == before:
                return cancelled


def run_worker() -> None:
    require_api_server()
    from prefect import serve

    from pipelines.flows import engine
    from switchboard.services.runs import mark_interrupted
    from switchboard.uow import UnitOfWork
    from switchboard.workflows.inbound import freeze_startup_objects

    with UnitOfWork(engine()) as uow:
        mark_interrupted(uow)
        uow.commit()
    skipped = skip_missed_runs()
    if skipped:
        print(f"skipped {skipped} scheduled runs missed while no worker ran (the newest of each flow runs now)",
              flush=True)
    freeze_startup_objects()  # imports done: full GCs stop walking them on every batch
    serve(*deployments(), pause_on_shutdown=False)
