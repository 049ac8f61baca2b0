"""The sending rig of the fault tests and the shared rate limit test: a sandbox channel with one
conversation, the receiver and the sandbox over real HTTP, webhook processing in a thread, and sender
worker processes (``tests.integration.send_worker``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, select

from connectors.sandbox import SandboxConfig, create_app
from switchboard.db.schema import Message
from switchboard.http.receiver import create_app as create_receiver
from switchboard.services.channels import create_channel, set_channel_credentials
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.services.outbox import enqueue_bot_reply
from switchboard.settings import get_settings
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import process_webhooks_once
from tests.fakes.server import run_asgi

PHONE_ID = "100000000000077"
TOKEN = "fault-token"
SECRET = "fault-secret"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Rig:
    engine: Engine
    url: str
    sandbox: str
    channel_id: int
    org: int
    conversation_id: int

    def enqueue(self, n: int, prefix: str = "m") -> list[str]:
        keys = [f"{prefix}-{i}" for i in range(n)]
        with UnitOfWork(self.engine) as uow:
            for key in keys:
                enqueue_bot_reply(uow, Actor.system(self.org), self.conversation_id, f"message {key}",
                                  idempotency_key=key)
            uow.commit()
        return keys

    def fail_next(self, **fault: object) -> None:
        assert httpx.post(f"{self.sandbox}/_sandbox/fail-next", json=fault).status_code == 200

    def keys(self) -> dict[str, Any]:
        """The sandbox's own record: sends per idempotency key, the most in any one second."""
        return dict(httpx.get(f"{self.sandbox}/_sandbox/keys").json())

    def counts(self) -> dict[str, int]:
        return dict(self.keys()["counts"])

    def statuses(self) -> dict[str, str]:
        with UnitOfWork(self.engine) as uow:
            rows = uow.session.execute(select(Message.idempotency_key, Message.status)
                                       .where(Message.direction == "OUTBOUND")).all()
        return {str(r.idempotency_key): str(r.status) for r in rows}

    def worker(self, seconds: float = 45, lease: int = 3, idle: float | None = None) -> subprocess.Popen[str]:
        """A sender process; it stops when nothing was due for ``idle`` seconds (by default longer than
        the lease, so that it takes over the claims of a worker that died)."""
        idle = lease + 4.0 if idle is None else idle
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen([sys.executable, "-m", "tests.integration.send_worker", self.url, str(seconds),
                                 str(lease), str(idle)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached in time"
            time.sleep(0.1)

    def settled(self, keys: list[str]) -> dict[str, str]:
        """Wait until no message is PENDING and every UNKNOWN the sandbox accepted was settled by its
        status webhook; then check exactly once against the sandbox's count per key."""
        def done() -> bool:
            statuses, counts = self.statuses(), self.counts()
            return all(statuses[k] != "PENDING" and not (statuses[k] == "UNKNOWN" and counts.get(k))
                       for k in keys)

        self.wait_until(done)
        statuses, counts = self.statuses(), self.counts()
        for key in keys:
            if counts.get(key, 0) == 1:
                assert statuses[key] in ("SENT", "DELIVERED", "READ"), (key, statuses[key])
            else:  # never reached the platform: shown to a person, never sent twice
                assert counts.get(key, 0) == 0 and statuses[key] == "UNKNOWN", (key, counts.get(key), statuses[key])
        return statuses


@contextmanager
def webhook_processing(engine: Engine, key: bytes) -> Iterator[None]:
    """The process-webhooks flow, in a thread: statuses echoing our keys settle sends."""
    stop = threading.Event()
    connectors = ConnectorCache(engine, key)

    def run() -> None:
        while not stop.is_set():
            try:
                if process_webhooks_once(engine, connectors).claimed == 0:
                    stop.wait(0.1)
            except Exception:  # noqa: BLE001 - PostgreSQL restarting: try again
                stop.wait(0.3)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
        connectors.close()


@contextmanager
def running(url: str, *, rate: float = 200.0, timeout_seconds: float = 2.0, statuses: bool = True
            ) -> Iterator[Rig]:
    key = get_settings().secret_key_bytes()
    engine = create_engine(url, pool_pre_ping=True, pool_size=10)
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Faults")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="sandbox", name="Sandbox", secret_key=key,
                            external_id=PHONE_ID, rate_limit_per_second=rate)
        uow.commit()
    with UnitOfWork(engine) as uow:
        result = ingest_items(uow, channel_id=ch.id, items=[InboundMessage(
            provider_message_id="wamid.in-1", contact=ContactRef("4917000000"), sent_at=datetime.now(UTC),
            body="hello")])
        uow.commit()
    with run_asgi(create_receiver(engine, key)) as receiver_url:
        config = SandboxConfig(phone_number_id=PHONE_ID, access_token=TOKEN, app_secret=SECRET,
                               webhook_url=f"{receiver_url}/webhooks/sandbox/{ch.webhook_key}", speed=50.0,
                               webhook_max_attempts=20, send_statuses=statuses,
                               enforce_window=False)  # its customers are made by the rig, not the sandbox
        with run_asgi(create_app(config)) as sandbox_url:
            with UnitOfWork(engine) as uow:
                set_channel_credentials(uow, Actor.system(org), ch.id, key, {
                    "access_token": TOKEN, "app_secret": SECRET, "phone_number_id": PHONE_ID,
                    "api_base_url": sandbox_url, "timeout_seconds": timeout_seconds})
                uow.commit()
            with webhook_processing(engine, key):
                yield Rig(engine, url, sandbox_url, ch.id, org, result.conversation_ids[0])
    engine.dispose()


def finish(*workers: subprocess.Popen[str]) -> None:
    for w in workers:
        out, _ = w.communicate(timeout=60)
        assert w.returncode in (0, -signal.SIGKILL), out
