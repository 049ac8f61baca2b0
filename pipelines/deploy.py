"""`switchboard deploy`: register every scheduled flow as a Prefect deployment on a work pool.

Scale-out on the engine we already use: the Prefect server keeps the schedules and queues the runs;
``prefect worker start --pool NAME`` on any machine with the package installed (and the same
environment: DATABASE_URL, SWITCHBOARD_SECRET_KEY, …) picks them up and runs each in a subprocess.

How the code is found (checked with Prefect 3.8.8, offline): each deployment's entrypoint is the flow's
*module path* (``pipelines.flows.process_webhooks_flow``, ``EntrypointType.MODULE_PATH``) with no
storage and no pull steps, so a worker imports the flow from the installed package — no image, no
git clone, no upload. (``Flow.deploy`` would insist on an image or a ``from_source`` location.)
Overlapping runs are safe (SKIP LOCKED claims and leases), so no concurrency limit is set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pipelines.worker import deployments, require_api_server
from switchboard.errors import SwitchboardError

POOL_TYPE = "process"


@dataclass(frozen=True)
class Deployed:
    name: str
    entrypoint: str
    interval_seconds: int
    deployment_id: str


def ensure_work_pool(name: str) -> bool:
    """Create the work pool (type ``process``) unless it exists; True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type=POOL_TYPE))
        except ObjectAlreadyExists:
            return False
    return True


def deploy(pool: str, work_queue: str | None = None) -> list[Deployed]:
    """Create or update one deployment per entry of ``SCHEDULES`` (same names, intervals, parameters)
    on ``pool``; idempotent (a second run updates them in place)."""
    import httpx
    from prefect.deployments.runner import EntrypointType

    require_api_server()
    try:
        ensure_work_pool(pool)
        out = []
        for dep in deployments(work_pool_name=pool, work_queue_name=work_queue,
                               entrypoint_type=EntrypointType.MODULE_PATH):
            deployment_id = dep.apply()
            out.append(Deployed(dep.name, str(dep.entrypoint), _interval(dep), str(deployment_id)))
    except httpx.TransportError as exc:
        raise SwitchboardError(f"cannot reach the Prefect API at {os.environ['PREFECT_API_URL']} ({exc}); "
                               "is `prefect server start` running there?") from None
    return out


def _interval(dep: Any) -> int:
    schedule = dep.schedules[0].schedule
    return int(schedule.interval.total_seconds())
