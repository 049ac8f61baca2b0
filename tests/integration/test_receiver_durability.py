"""The receiver answers 200 only for a delivery that is committed in PostgreSQL, with real processes:

* `switchboard serve` killed with SIGKILL while 16 clients send: every delivery answered 200 is stored;
* PostgreSQL stopped under the receiver: nothing is answered 200 while it is down (the platform sends
  again), and once it is back the receiver stores deliveries again by itself (its connections are
  opened anew), every one answered 200 stored exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from switchboard.http.receiver import create_app
from switchboard.services.channels import create_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from tests.fakes.server import run_asgi
from tests.helpers import free_port, private_postgres, wait_until_serving

SECRET = "durability-app-secret"
ROOT = Path(__file__).resolve().parents[2]


def delivery(i: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": "100"},
            "messages": [{"from": "4915100000001", "id": f"wamid.dur{i}", "timestamp": "1700000000",
                          "type": "text", "text": {"body": f"hello {i}"}}]}}]}]}).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": sig, "Content-Type": "application/json"}


def channel_key(engine: Engine) -> str:
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Durability")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", external_id="100",
                            secret_key=get_settings().secret_key_bytes(),
                            credentials={"app_secret": SECRET, "access_token": "t", "phone_number_id": "100"})
        uow.commit()
    return ch.webhook_key


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as con:
        bodies = con.execute(text("select body from webhook_events where status = 'RECEIVED'")).scalars().all()
    return [json.loads(b)["entry"][0]["changes"][0]["value"]["messages"][0]["id"] for b in bodies]


class Senders:
    """``n`` threads POSTing deliveries with distinct ids until stopped; records the ids answered 200."""

    def __init__(self, url: str, n: int = 16) -> None:
        self.url = url
        self.acknowledged: list[str] = []
        self.other: list[int | str] = []
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                with self._lock:
                    i = self._next
                    self._next += 1
                body, headers = delivery(i)
                try:
                    r = client.post(self.url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    self.other.append(exc.__class__.__name__)
                    time.sleep(0.01)
                    continue
                if r.status_code == 200:
                    self.acknowledged.append(f"wamid.dur{i}")
                else:
                    self.other.append(r.status_code)

    def __enter__(self) -> Senders:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} deliveries answered 200"
            time.sleep(0.02)


@contextmanager
def served_process(db_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=db_url, SWITCHBOARD_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "switchboard.cli.main", "serve", "--port", str(port),
                             "--workers", "1"], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, f"{base}/health", what="the receiver")
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_a_receiver_killed_with_sigkill_lost_no_acknowledged_delivery(db_url: str, tmp_path: Path) -> None:
    engine = create_engine(db_url)
    try:
        key = channel_key(engine)
        with served_process(db_url, tmp_path) as (proc, base), Senders(f"{base}/webhooks/whatsapp/{key}") as senders:
            senders.wait_for(300)
            proc.send_signal(signal.SIGKILL)  # in the middle of group commits
            proc.wait(timeout=10)
            time.sleep(0.3)  # the clients see their connections fail
        acknowledged = set(senders.acknowledged)
        stored = stored_ids(engine)
        assert len(acknowledged) >= 300
        assert acknowledged <= set(stored), f"answered 200 but not stored: {sorted(acknowledged - set(stored))[:5]}"
        assert len(stored) == len(set(stored))  # and nothing stored twice
    finally:
        engine.dispose()


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="stops its own embedded PostgreSQL")
def test_nothing_is_answered_200_while_postgresql_is_down(tmp_path: Path) -> None:
    with private_postgres(tmp_path, "durability") as pg:
        engine = create_engine(pg.url, pool_pre_ping=True)
        try:
            key = channel_key(engine)
            with run_asgi(create_app(engine, get_settings().secret_key_bytes())) as base:
                hook = f"{base}/webhooks/whatsapp/{key}"
                with Senders(hook, n=4) as senders:
                    senders.wait_for(50)
                    pg.stop()
                    acknowledged_at_stop = len(senders.acknowledged)
                    time.sleep(1.0)  # requests keep coming while it is down
                    refused_while_down = len(senders.other)
                    acknowledged_while_down = len(senders.acknowledged) - acknowledged_at_stop
                    pg.start()
                    senders.wait_for(len(senders.acknowledged) + 50, timeout=30)  # it recovers by itself
                # at most the requests whose commit was under way when the server stopped got their 200
                assert acknowledged_while_down <= 4
                assert refused_while_down > 0 and all(code == 503 for code in senders.other if isinstance(code, int))
            acknowledged = set(senders.acknowledged)
            stored = stored_ids(engine)
            assert acknowledged <= set(stored) and len(stored) == len(set(stored))
        finally:
            engine.dispose()
