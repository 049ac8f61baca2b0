"""A worker that starts after downtime skips the scheduled runs it missed, against a real Prefect API
server: per deployment of ours the newest missed run is left to run, the older ones are cancelled;
upcoming runs and other deployments are not touched."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from pipelines.worker import skip_missed_runs
from tests.helpers import prefect_server

pytestmark = pytest.mark.e2e


def test_a_restarted_worker_skips_runs_missed_while_it_was_down(tmp_path: Path) -> None:
    from prefect.client.orchestration import SyncPrefectClient, get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings
    from prefect.states import Scheduled

    now = datetime.now(UTC)
    with prefect_server(tmp_path, dict(os.environ)) as api, \
            temporary_settings({PREFECT_API_URL: api, PREFECT_HOME: tmp_path / "prefect"}), \
            get_client(sync_client=True) as client:

        def deployment(flow: str, name: str) -> UUID:
            return client.create_deployment(flow_id=client.create_flow_from_name(flow), name=name)

        def run(deployment_id: UUID, minutes: int, c: SyncPrefectClient = client) -> UUID:
            return c.create_flow_run_from_deployment(
                deployment_id, state=Scheduled(scheduled_time=now + timedelta(minutes=minutes))).id

        send, cleanup = deployment("send-outbox", "send-outbox"), deployment("cleanup", "cleanup")
        foreign = deployment("somebody-elses", "not-ours")
        sends = {m: run(send, m) for m in (-30, -20, -10, 10)}
        cleanups = {m: run(cleanup, m) for m in (-600,)}
        theirs = {m: run(foreign, m) for m in (-30, -20)}

        assert skip_missed_runs(now=now) == 2

        def state(run_id: UUID) -> Any:
            s = client.read_flow_run(run_id).state
            assert s is not None
            return s.type

        assert [state(sends[m]) for m in (-30, -20)] == [StateType.CANCELLED] * 2
        assert state(sends[-10]) == StateType.SCHEDULED  # the newest missed run catches up
        assert state(sends[10]) == StateType.SCHEDULED  # not due yet
        assert state(cleanups[-600]) == StateType.SCHEDULED  # one missed run: kept
        assert {state(r) for r in theirs.values()} == {StateType.SCHEDULED}  # not one of our deployments
        assert skip_missed_runs(now=now) == 0  # nothing more to skip
