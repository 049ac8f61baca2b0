"""`switchboard worker` against a real Prefect API server: scheduled runs actually happen.

(On Prefect's ephemeral server, or with SQLAlchemy 2.1, schedules silently never fire — see FACTS.md.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from switchboard.db.schema import PipelineRun, WebhookEvent
from switchboard.services import webhooks
from switchboard.services.channels import create_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from tests.helpers import prefect_server

pytestmark = pytest.mark.e2e


def test_worker_runs_flows_on_schedule(engine: Engine, db_url: str, tmp_path: Path) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Sched")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", secret_key=key, external_id="100",
                            credentials={"app_secret": "s", "access_token": "t", "phone_number_id": "100"})
        uow.commit()
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "100"},
                                       "contacts": [{"profile": {"name": "S"}, "wa_id": "49"}],
                                       "messages": [{"from": "49", "id": "wamid.s1", "timestamp": "1763769600",
                                                     "type": "text", "text": {"body": "scheduled"}}]}}]}]}).encode()
    with UnitOfWork(engine) as uow:
        webhooks.store_event(uow, provider="whatsapp", channel_id=ch.id, body=body, headers={
            "x-hub-signature-256": "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()})
        uow.commit()

    env = dict(os.environ, DATABASE_URL=db_url, SWITCHBOARD_HOME=str(tmp_path / "home"),
               WAREHOUSE_PATH=str(tmp_path / "wh.duckdb"))
    worker = None
    with prefect_server(tmp_path, env) as api:
        env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=api)
        try:
            worker = subprocess.Popen([sys.executable, "-m", "switchboard.cli.main", "worker"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + 150
            done: set[str] = set()
            status = None
            while time.monotonic() < deadline:
                with UnitOfWork(engine) as uow:
                    done = set(uow.session.execute(select(PipelineRun.name)).scalars())
                    status = uow.session.execute(select(WebhookEvent.status)).scalar_one()
                if {"maintain-inbox", "process-webhooks"} <= done and status == "PROCESSED":
                    break
                assert worker.poll() is None, "the worker exited"
                time.sleep(1)
            assert {"maintain-inbox", "process-webhooks"} <= done, done
            assert status == "PROCESSED"
        finally:
            if worker is not None:
                os.killpg(worker.pid, 15)
                worker.wait(timeout=30)
