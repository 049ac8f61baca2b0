"""Inbound throughput benchmark: stored webhook deliveries → inbox (``process_webhooks_once``).

    python bench/bench_webhooks.py                       # 20,000 + 20,000 deliveries, then latency
    python bench/bench_webhooks.py --deliveries 5000     # smaller
    python bench/bench_webhooks.py --database-url postgresql://...   # an external PostgreSQL

Measures, each worker a separate process running the production loop:

* backlog drain, one worker: ``--deliveries`` stored WhatsApp deliveries of one message each (half
  from new customers, half follow-ups in existing conversations), then as many status deliveries
  (``delivered`` of our replies) - deliveries/s for each kind;
* two workers on a second backlog of messages of the same mix - deliveries/s and the ratio to one;
* end-to-end latency on an idle system: a signed delivery POSTed to the receiver, from its 200 until
  the message is visible in the inbox query (``list_conversations``), a worker waking on NOTIFY -
  p50/p95/max in ms.

Prints figures; asserts nothing. Uses ``--database-url`` if given, else a throw-away embedded
PostgreSQL under a temp directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from connectors.sandbox.payloads import encode_signed, inbound_message_body, status_body  # noqa: E402
from switchboard.db.engine import scratch_database  # noqa: E402
from switchboard.db.migrate import upgrade  # noqa: E402
from switchboard.db.schema import WebhookEvent  # noqa: E402
from switchboard.services.ingest import ingest_items  # noqa: E402
from switchboard.types import Actor, ContactRef, InboundMessage  # noqa: E402
from switchboard.uow import UnitOfWork  # noqa: E402

NUMBER = "5550001"
SECRET = "bench-app-secret"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def setup(url: str, existing: int) -> dict[str, Any]:
    """An organization, a WhatsApp channel, a manager, and ``existing`` conversations with one message
    and one reply each (the follow-ups' conversations; the replies get the statuses)."""
    from switchboard.auth.users import create_user
    from switchboard.services.channels import create_channel
    from switchboard.services.organizations import create_organization
    from switchboard.settings import get_settings

    key = get_settings().secret_key_bytes()
    engine = create_engine(url)
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Bench")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", secret_key=key, external_id=NUMBER,
                            credentials={"app_secret": SECRET, "access_token": "t", "phone_number_id": NUMBER})
        manager = create_user(uow, org, email="m@bench.test", name="M", role="manager", secret_key=key,
                              password="long enough password")
        uow.commit()
    for start in range(0, existing, 2000):
        with UnitOfWork(engine) as uow:
            ingest_items(uow, channel_id=ch.id, items=[item for i in range(start, min(existing, start + 2000))
                                                       for item in _history(i)])
            uow.commit()
    with engine.connect() as con:  # statistics, as a live database has them (autovacuum may lag a bulk load)
        con.execute(text("analyze"))
        con.commit()
    engine.dispose()
    return {"channel": ch.id, "webhook_key": ch.webhook_key, "manager": manager.user_id}


def _history(i: int) -> list[InboundMessage]:
    who = ContactRef(_phone(i), display_name=_name(i))
    return [InboundMessage(f"wamid.old{i}", who, T0 - timedelta(hours=2), "an earlier question"),
            InboundMessage(f"wamid.reply{i}", who, T0 - timedelta(hours=1), "an earlier answer", direction="OUTBOUND",
                           author_kind="agent")]


def _phone(i: int) -> str:
    return f"49151{i:07d}"


def _name(i: int) -> str:
    """A customer's WhatsApp profile name: the same in every delivery, as the platform sends it."""
    return f"Customer {i}"


def message_bodies(tag: str, n: int, existing: int, new_from: int) -> Iterator[bytes]:
    """``n`` deliveries of one message: even ones from a new customer, odd ones a follow-up."""
    for k in range(n):
        i = new_from + k if k % 2 == 0 else k % existing
        yield encode_signed(inbound_message_body(
            phone_number_id=NUMBER, display_phone_number="1", from_phone=_phone(i), name=_name(i),
            wamid=f"wamid.{tag}{k}", timestamp=int(T0.timestamp()) + k, text=f"message {tag} {k}"), SECRET)[0]


def status_bodies(n: int) -> Iterator[bytes]:
    for k in range(n):
        yield encode_signed(status_body(phone_number_id=NUMBER, display_phone_number="1", wamid=f"wamid.reply{k}",
                                        status="delivered", recipient_id=_phone(k),
                                        timestamp=int(T0.timestamp()) + k), SECRET)[0]


def store(url: str, channel_id: int, bodies: Iterator[bytes]) -> int:
    engine = create_engine(url)
    rows = [{"provider": "whatsapp", "channel_id": channel_id, "body": b, "headers": {}, "status": "RECEIVED"}
            for b in bodies]
    with UnitOfWork(engine) as uow:
        uow.session.execute(insert(WebhookEvent), rows)
        uow.commit()
    engine.dispose()
    return len(rows)


def drain(url: str, start_at: float, freeze: bool = True) -> None:
    """Worker process: from ``start_at`` (epoch s: all workers start together once imported), process
    deliveries until none is left; prints how many, when it started and ended, its CPU seconds and
    those of its PostgreSQL backend (-1 when the server is not on this machine)."""
    from switchboard.settings import get_settings
    from switchboard.workflows.connector_cache import ConnectorCache
    from switchboard.workflows.inbound import process_webhooks_once

    engine = create_engine(url, pool_size=1, max_overflow=0)  # one connection: one backend to measure
    connectors = ConnectorCache(create_engine(url), get_settings().secret_key_bytes())  # loads channels once
    with engine.connect() as con:
        backend = int(con.execute(text("select pg_backend_pid()")).scalar_one())
    if freeze:
        from switchboard.workflows.inbound import freeze_startup_objects

        freeze_startup_objects()  # as the worker does once at its start
    time.sleep(max(0.0, start_at - time.time()))
    n, errors, started, cpu, server = 0, 0, time.time(), time.process_time(), backend_cpu(backend)
    while True:
        stats = process_webhooks_once(engine, connectors)
        if not stats.claimed:
            break
        n += stats.claimed
        errors += stats.errors
    server_end = backend_cpu(backend)
    used = server_end - server if server is not None and server_end is not None else -1.0
    print(f"{n} {errors} {started:.3f} {time.time():.3f} {time.process_time() - cpu:.3f} {used:.3f}", flush=True)


def backend_cpu(pid: int) -> float | None:
    """User+system CPU seconds of a local PostgreSQL backend (None when the server is not local): with the
    worker's own, a figure that other users of a loaded machine change far less than the rates."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_workers(url: str, workers: int, freeze: bool) -> tuple[int, float, str]:
    """Start ``workers`` drain processes at once; (deliveries, seconds from the first worker's first claim
    to the last one's end: process start-up and imports excluded, CPU per delivery)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start_at = f"{time.time() + 8:.3f}"  # time enough to start and import
    procs = [subprocess.Popen([sys.executable, __file__, "--drain", url, start_at, "01"[freeze]], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    outs = [p.communicate()[0].split() for p in procs]
    took = max(float(o[3]) for o in outs) - min(float(o[2]) for o in outs)
    if any(int(o[1]) for o in outs):
        print(f"  (errors: {[o[1] for o in outs]})")
    n = max(sum(int(o[0]) for o in outs), 1)
    cpu = f"worker CPU {sum(float(o[4]) for o in outs) / n * 1e6:,.0f} µs/delivery"
    if all(float(o[5]) >= 0 for o in outs):
        cpu += f", its backend's CPU {sum(float(o[5]) for o in outs) / n * 1e6:,.0f} µs/delivery"
    return n, took, cpu


def drain_figure(label: str, url: str, workers: int, freeze: bool) -> float:
    n, took, cpu = run_workers(url, workers, freeze)
    rate = n / took
    print(f"{label}: {n:,} deliveries in {took:.2f} s with {workers} worker{'s' * (workers > 1)}: "
          f"{rate:,.0f} deliveries/s ({cpu}; load {os.getloadavg()[0]:.1f})")
    return rate


def latency(url: str, info: dict[str, Any], samples: int) -> None:
    """POST → 200 → visible in list_conversations, one delivery at a time, a worker waking on NOTIFY."""
    from pipelines.flows import NotifyListener
    from switchboard.http.receiver import NOTIFY_CHANNEL, create_app
    from switchboard.policy import actor_for_user
    from switchboard.services.inbox_views import list_conversations
    from switchboard.settings import get_settings
    from switchboard.workflows.connector_cache import ConnectorCache
    from switchboard.workflows.inbound import process_webhooks_once
    from tests.fakes.server import run_asgi

    key = get_settings().secret_key_bytes()
    engine = create_engine(url, pool_size=4)
    stop = threading.Event()

    def worker() -> None:  # the process-webhooks flow's loop
        connectors = ConnectorCache(engine, key)
        with NotifyListener(engine, NOTIFY_CHANNEL) as listener:
            while not stop.is_set():
                if not process_webhooks_once(engine, connectors).claimed:
                    listener.wait(0.5)
        connectors.close()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    with UnitOfWork(engine) as uow:
        actor = actor_for_user(uow, info["manager"])
    took: list[float] = []
    with run_asgi(create_app(engine, key)) as base, httpx.Client() as client:
        for k in range(samples):
            probe = f"latency probe {k}"
            raw, headers = encode_signed(inbound_message_body(
                phone_number_id=NUMBER, display_phone_number="1", from_phone=_phone(k), name=None,
                wamid=f"wamid.lat{k}", timestamp=int(time.time()), text=probe), SECRET)
            r = client.post(f"{base}/webhooks/whatsapp/{info['webhook_key']}", content=raw, headers=headers)
            t = time.perf_counter()
            assert r.status_code == 200, r.text
            while True:
                with UnitOfWork(engine) as uow:
                    top = list_conversations(uow, actor, limit=1).items
                if top and top[0].last_message_preview == probe:
                    break
                time.sleep(0.002)
            took.append((time.perf_counter() - t) * 1000)
            time.sleep(0.05)
    stop.set()
    thread.join(5)
    took.sort()
    print(f"latency receiver 200 -> visible in the inbox query ({samples} deliveries, idle): "
          f"p50 {statistics.median(took):.0f} ms, p95 {took[int(0.95 * (len(took) - 1))]:.0f} ms, "
          f"max {took[-1]:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--deliveries", type=int, default=20_000)
    ap.add_argument("--latency-samples", type=int, default=40)
    ap.add_argument("--no-gc-freeze", action="store_true",
                    help="workers skip freeze_startup_objects() (to measure what it saves)")
    ap.add_argument("--drain", nargs=3, default=None, help=argparse.SUPPRESS)  # worker process: url, start, freeze
    args = ap.parse_args()
    if args.drain:
        drain(args.drain[0], float(args.drain[1]), args.drain[2] == "1")
        return
    print(f"load before: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f} "
          f"({os.cpu_count()} cores)")
    from switchboard.settings import new_secret_key

    os.environ.setdefault("SWITCHBOARD_SECRET_KEY", new_secret_key())  # the workers inherit it
    url = scratch_database("bench_webhooks", args.database_url)
    upgrade(url)
    n = existing = args.deliveries
    freeze = not args.no_gc_freeze
    t = time.perf_counter()
    info = setup(url, existing)
    print(f"setup: {existing:,} conversations with a message and a reply in {time.perf_counter() - t:.1f} s")
    store(url, info["channel"], message_bodies("a", n, existing, existing))
    one = drain_figure("messages (half new customers, half follow-ups)", url, 1, freeze)
    store(url, info["channel"], status_bodies(n))
    drain_figure("statuses (delivered)", url, 1, freeze)
    store(url, info["channel"], message_bodies("b", n, existing, existing + n))
    two = drain_figure("messages, second backlog", url, 2, freeze)
    print(f"two workers / one worker: {two / one:.2f}x")
    latency(url, info, args.latency_samples)
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
