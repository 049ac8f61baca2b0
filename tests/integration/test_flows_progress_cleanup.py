"""Under Prefect: the syncs' progress callback (a progress artifact created once, then updated per
batch) and the cleanup flow (its counts recorded in pipeline_runs)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from sqlalchemy import Engine, select

from pipelines import flows
from pipelines.progress import ProgressArtifact
from switchboard.db.schema import PipelineRun
from switchboard.services.sync_progress import Progress
from switchboard.uow import UnitOfWork

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@flow(name="progress-probe")
def _probe() -> str:
    report = ProgressArtifact("Telegram-Sync 7", logging.getLogger("probe"))
    report(Progress(7, "telegram-sync", T0, chats_done=1, chats_total=4, messages_done=100))
    report(Progress(7, "telegram-sync", T0, chats_done=4, chats_total=4, messages_done=250, finished=True))
    return str(report.artifact_id)


async def _artifact(artifact_id: str) -> tuple[object, str | None]:
    from uuid import UUID

    async with get_client() as client:
        artifact = await client.read_artifacts()
        found = [a for a in artifact if a.id == UUID(artifact_id)]
        return found[0].data, found[0].description


@pytest.mark.usefixtures("prefect_harness")
def test_progress_artifact_is_created_then_updated(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="probe"):
        artifact_id = _probe()
    data, description = asyncio.run(_artifact(artifact_id))
    assert data == 100.0 and description == "channel 7: 4 of 4 chats, 250 messages (finished)"
    assert "telegram-sync-7: channel 7: 1 of 4 chats, 100 messages (running)" in caplog.text


@pytest.mark.usefixtures("prefect_harness")
def test_cleanup_flow_records_its_counts(settings_env: str, engine: Engine) -> None:
    result = flows.cleanup_flow()
    assert result == {"login_state": 0, "webhook_events": 0, "event_deliveries": 0, "pipeline_runs": 0,
                      "platform_signals": 0, "media_files": 0, "media_bytes": 0}
    with UnitOfWork(engine) as uow:
        run = uow.session.execute(select(PipelineRun).where(PipelineRun.name == "cleanup")).scalar_one()
        assert (run.status, run.detail) == ("ok", result)
