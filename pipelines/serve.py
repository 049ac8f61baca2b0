"""`switchboard worker`: serve every flow with its schedule against a Prefect API server.

Schedules only fire on a real Prefect API server (not the ephemeral one), so the worker refuses to
start without `PREFECT_API_URL`; `switchboard demo` starts a server on the embedded PostgreSQL.
"""

from __future__ import annotations

import os
from typing import Any

from switchboard.errors import SwitchboardError

# name -> (flow attribute, interval seconds, parameters)
SCHEDULES: dict[str, tuple[str, int, dict[str, Any]]] = {
    "process-webhooks": ("process_webhooks_flow", 60, {"max_seconds": 55.0}),
    "send-outbox": ("send_outbox_flow", 60, {"max_seconds": 55.0}),
    "maintain-inbox": ("maintain_flow", 30, {}),
    "warehouse-build": ("warehouse_build_flow", 300, {"full": False}),
}


def deployments() -> list[Any]:
    from datetime import timedelta

    from prefect.schedules import Interval

    from pipelines import flows
    from switchboard.clock import utcnow

    # Anchor the intervals a few seconds from now so the first runs start at once, not an
    # interval later (messages that arrived while the worker was down are processed right away).
    anchor = utcnow() + timedelta(seconds=3)
    out = []
    for name, (attr, interval, params) in SCHEDULES.items():
        fl = getattr(flows, attr)
        out.append(fl.to_deployment(name=name, schedules=[Interval(interval, anchor_date=anchor)],
                                    parameters=params, concurrency_limit=1))
    import importlib

    try:
        telegram = importlib.import_module("pipelines.telegram")
    except ImportError:
        return out
    extra = getattr(telegram, "deployments", None)
    if callable(extra):
        out.extend(extra())
    return out


def run_worker() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise SwitchboardError(
            "PREFECT_API_URL is not set: scheduled flows only run against a Prefect API server. Start one "
            "with `prefect server start` (or use `switchboard demo`, which starts one) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api."
        )
    from prefect import serve

    serve(*deployments(), pause_on_shutdown=False)
