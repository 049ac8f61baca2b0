"""Outbox send throughput under a shared rate limit, and reply → SENT latency (issue 11).

(a) Throughput: 3 sender processes (``drain_outbox``), one sandbox channel limited to 80/s, a backlog
    large enough for ``--seconds`` (60 by default) of sending. Prints the achieved rate as a percentage
    of the limit and the most sends the sandbox received in any one second (its own receive times).
(b) Latency: replies offered at 10/s (500 by default, ``10 × --seconds`` when shorter) while the 3
    processes run; prints p50 and p95 of enqueue → SENT (``created_at`` → ``status_updated_at``).

Runs on a throwaway embedded PostgreSQL (``--database-url`` to use another server) and an in-process
sandbox without status webhooks. ``python bench/bench_send.py --seconds 15`` for a short run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine, delete, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.sandbox import SandboxConfig, create_app  # noqa: E402
from switchboard.db.engine import scratch_database  # noqa: E402
from switchboard.db.migrate import upgrade  # noqa: E402
from switchboard.db.schema import Message  # noqa: E402
from switchboard.services.channels import create_channel, set_channel_credentials  # noqa: E402
from switchboard.services.ingest import ingest_items  # noqa: E402
from switchboard.services.organizations import create_organization  # noqa: E402
from switchboard.services.outbox import enqueue_bot_reply  # noqa: E402
from switchboard.settings import get_settings  # noqa: E402
from switchboard.types import Actor, ContactRef, InboundMessage  # noqa: E402
from switchboard.uow import UnitOfWork  # noqa: E402
from switchboard.workflows.connector_cache import ConnectorCache  # noqa: E402
from switchboard.workflows.sending import drain_outbox  # noqa: E402

PHONE_ID = "100000000000088"
TOKEN = "bench-token"
WORKERS = 3
LIMIT = 80.0


def _worker(url: str, seconds: float) -> None:
    engine = create_engine(url, pool_pre_ping=True)
    connectors = ConnectorCache(engine, get_settings().secret_key_bytes())
    print("ready", flush=True)
    sys.stdin.readline()  # go
    try:
        stats = drain_outbox(engine, connectors, seconds=seconds, limit=20)
    finally:
        connectors.close()
    print(json.dumps({k: v for k, v in asdict(stats).items() if k != "errors"}), flush=True)


def _channel(engine: Engine, org: int, sandbox_url: str, secret: bytes) -> tuple[int, int]:
    """The sandbox channel limited to 80/s and two conversations on it (throughput, latency)."""
    with UnitOfWork(engine) as uow:
        ch = create_channel(uow, Actor.system(org), key="wa", provider="sandbox", name="Sandbox", secret_key=secret,
                            external_id=PHONE_ID, rate_limit_per_second=LIMIT)
        set_channel_credentials(uow, Actor.system(org), ch.id, secret, {
            "access_token": TOKEN, "app_secret": "s", "phone_number_id": PHONE_ID, "api_base_url": sandbox_url})
        uow.commit()
    with UnitOfWork(engine) as uow:
        result = ingest_items(uow, channel_id=ch.id, items=[InboundMessage(
            provider_message_id=f"wamid.in-{n}", contact=ContactRef(n), sent_at=datetime.now(UTC), body="hello")
            for n in ("4917001", "4917002")])
        uow.commit()
    convs = sorted(result.conversation_ids)
    return convs[0], convs[1]


def _enqueue(engine: Engine, org: int, conv: int, keys: list[str]) -> None:
    with UnitOfWork(engine) as uow:
        for key in keys:
            enqueue_bot_reply(uow, Actor.system(org), conv, f"bench {key}", idempotency_key=key)
        uow.commit()


def _start_workers(url: str, seconds: float) -> list[subprocess.Popen[str]]:
    """The sender processes, started together once each has imported everything and is ready."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", url, str(seconds)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(WORKERS)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return procs


def _wait(procs: list[subprocess.Popen[str]]) -> list[dict[str, object]]:
    return [json.loads((p.communicate()[0] or "{}").strip().splitlines()[-1] or "{}") for p in procs]


def run(url: str, seconds: float) -> None:
    from tests.fakes.server import run_asgi

    upgrade(url)
    engine = create_engine(url, pool_size=5)
    secret = get_settings().secret_key_bytes()
    config = SandboxConfig(phone_number_id=PHONE_ID, access_token=TOKEN, app_secret="s", webhook_url="",
                           send_statuses=False, enforce_window=False)
    with run_asgi(create_app(config)) as sandbox_url:
        with UnitOfWork(engine) as uow:
            org = create_organization(uow, "Bench")
            uow.commit()
        tput_conv, lat_conv = _channel(engine, org, sandbox_url, secret)

        # (a) throughput: a backlog for the whole run, 3 processes, one channel at 80/s
        backlog = int(LIMIT * seconds * 1.15) + 50
        _enqueue(engine, org, tput_conv, [f"t-{i}" for i in range(backlog)])
        procs = _start_workers(url, seconds + 3)
        deadline = time.monotonic() + 60
        while httpx.get(f"{sandbox_url}/_sandbox/keys").json()["sent"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(seconds)
        sent = httpx.get(f"{sandbox_url}/_sandbox/sent").json()["messages"]
        times = sorted(m["received_at"] for m in sent)
        t0 = times[0]
        window = [t for t in times if t < t0 + seconds]
        keys = httpx.get(f"{sandbox_url}/_sandbox/keys").json()
        rate = len(window) / seconds
        stats = _wait(procs)
        print(f"(a) throughput: {len(window)} sends in {seconds:.0f} s = {rate:.1f}/s = {100 * rate / LIMIT:.1f} % "
              f"of {LIMIT:.0f}/s; most in any one second: {keys['max_in_one_second']} "
              f"(over {keys['sent']} sends); duplicates: {sum(1 for n in keys['counts'].values() if n > 1)}")
        print(f"    workers: {stats}")

        # (b) latency: replies offered at 10/s while the 3 processes poll (throughput backlog drained first)
        with UnitOfWork(engine) as uow:
            uow.session.execute(delete(Message).where(Message.status == "PENDING",
                                                      Message.conversation_id == tput_conv))
            uow.commit()
        replies = min(500, int(10 * seconds))
        procs = _start_workers(url, replies / 10 + 4)
        start = time.monotonic()
        for i in range(replies):
            _enqueue(engine, org, lat_conv, [f"l-{i}"])
            time.sleep(max(0.0, start + (i + 1) / 10 - time.monotonic()))
        time.sleep(3)
        with UnitOfWork(engine) as uow:
            rows = uow.session.execute(select(Message.created_at, Message.status_updated_at, Message.status)
                                       .where(Message.conversation_id == lat_conv,
                                              Message.direction == "OUTBOUND")).all()
        _wait(procs)
    lat = sorted((r.status_updated_at - r.created_at).total_seconds() * 1000 for r in rows if r.status == "SENT")
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    print(f"(b) reply -> SENT over {len(lat)}/{replies} replies offered at 10/s: p50 {q[49]:.0f} ms, "
          f"p95 {q[94]:.0f} ms, max {lat[-1] if lat else float('nan'):.0f} ms")
    print(f"load: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the throughput run (default 60)")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)  # a sender process: url, seconds
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker[0], float(args.worker[1]))
        return
    os.environ.setdefault("SWITCHBOARD_SECRET_KEY", "q6h4c8I6S1m0u5n8Yx6cRkq3sT2qkq3mD8gkY8b0wS0")
    run(scratch_database("bench_send", args.database_url), args.seconds)


if __name__ == "__main__":
    main()
