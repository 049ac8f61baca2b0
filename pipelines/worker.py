"""`switchboard worker`: serve every flow with its schedule against a Prefect API server.

Schedules only fire on a real Prefect API server (not the ephemeral one), so the worker refuses to
start without `PREFECT_API_URL`; `switchboard demo` starts a server on the embedded PostgreSQL.
"""

from __future__ import annotations

import importlib
import os
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
    freeze_startup_objects()  # imports done: full GCs stop walking them on every batch
    serve(*deployments(), pause_on_shutdown=False)
