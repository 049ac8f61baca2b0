"""HTTP API benchmark: `GET /api/v1/messages/{id}` and `POST /api/v1/messages`, throughput and latency.

Starts a scratch embedded PostgreSQL, an organization with a Telegram channel (no messaging window),
an API key (rate limit high enough not to interfere) and `switchboard serve --workers N` on
127.0.0.1 (uvicorn), then for ``--seconds`` each:

* POST: ``C`` concurrent clients send ``{"channel": "tg", "to": <one of 500 chat ids>, "text": …}``
  with a fresh ``Idempotency-Key`` each (authenticate + rate window + usage, find-or-create contact and
  conversation, the PENDING message, the idempotency record; commits);
* GET: the same clients read the messages just written by id.

Prints requests/s and p50/p95/p99 in ms for each; asserts nothing. Run it briefly and on purpose:

    .venv/bin/python bench/bench_api.py --seconds 5 --concurrency 16 --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.db.engine import scratch_database  # noqa: E402
from switchboard.db.migrate import upgrade  # noqa: E402
from switchboard.services.api_keys import create_api_key  # noqa: E402
from switchboard.services.channels import create_channel  # noqa: E402
from switchboard.services.organizations import create_organization  # noqa: E402
from switchboard.settings import new_secret_key  # noqa: E402
from switchboard.types import Actor  # noqa: E402
from switchboard.uow import UnitOfWork  # noqa: E402

Request = Callable[[httpx.AsyncClient, int], Any]  # (client, n) -> awaitable response


async def drive(make: Request, seconds: float, concurrency: int) -> tuple[list[float], list[httpx.Response], float]:
    """``concurrency`` clients calling ``make`` until ``seconds`` pass: latencies, responses, elapsed."""
    latencies: list[float] = []
    responses: list[httpx.Response] = []
    counter = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    start = time.perf_counter()
    deadline = start + seconds
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def one_client() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = await make(client, next(counter))
                latencies.append(time.perf_counter() - t0)
                responses.append(r)

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return latencies, responses, time.perf_counter() - start


def report(name: str, latencies: list[float], responses: list[httpx.Response], elapsed: float, ok: int) -> None:
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(len(ms) * p))] if ms else float("nan")

    good = sum(r.status_code == ok for r in responses)
    other = sorted({r.status_code for r in responses} - {ok})
    print(f"  {name}: {good:,} answered {ok} in {elapsed:.1f} s = {good / elapsed:,.0f} requests/s"
          f"{f'  (other statuses: {other})' if other else ''}")
    print(f"    latency ms: p50 {pct(0.5):.1f}  p95 {pct(0.95):.1f}  p99 {pct(0.99):.1f}  "
          f"max {ms[-1] if ms else float('nan'):.1f}  mean {statistics.fmean(ms) if ms else float('nan'):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5, help="duration of each phase (default 5)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1, help="`switchboard serve` processes (default 1)")
    ap.add_argument("--port", type=int, default=18941)
    ap.add_argument("--database-url", help="an external PostgreSQL (default: a throw-away embedded one)")
    args = ap.parse_args()

    url = scratch_database("bench_api", args.database_url)
    upgrade(url)
    secret = new_secret_key()
    os.environ["SWITCHBOARD_SECRET_KEY"] = secret
    from switchboard.settings import get_settings

    get_settings.cache_clear()
    engine = create_engine(url)
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Bench")
        create_channel(uow, Actor.system(org), key="tg", provider="telegram", name="Telegram",
                       secret_key=get_settings().secret_key_bytes())
        key = create_api_key(uow, Actor.system(org), name="bench", scopes=["messages:send", "messages:read"],
                             rate_limit_per_minute=1_000_000).key
        uow.commit()
    engine.dispose()
    env = dict(os.environ, DATABASE_URL=url, SWITCHBOARD_SECRET_KEY=secret)
    proc = subprocess.Popen([sys.executable, "-m", "switchboard.cli.main", "serve", "--host", "127.0.0.1",
                             "--port", str(args.port), "--workers", str(args.workers)], env=env)
    base = f"http://127.0.0.1:{args.port}/api/v1"
    auth = {"Authorization": f"Bearer {key}"}
    try:
        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{args.port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("`switchboard serve` did not start")

        def post(client: httpx.AsyncClient, n: int) -> Any:
            return client.post(f"{base}/messages", headers={**auth, "Idempotency-Key": f"bench-{time.time_ns()}-{n}"},
                               json={"channel": "tg", "to": str(100_000 + n % 500), "text": f"order {n} shipped"})

        asyncio.run(drive(post, 1, 4))  # warm-up: pools, first contacts
        print(f"API benchmark: serve workers={args.workers} concurrency={args.concurrency} "
              f"phase={args.seconds:.0f} s (loopback, httpx client in this process)")
        lat, responses, elapsed = asyncio.run(drive(post, args.seconds, args.concurrency))
        report("POST /api/v1/messages", lat, responses, elapsed, 202)
        ids = [r.json()["id"] for r in responses if r.status_code == 202] or [1]

        def get(client: httpx.AsyncClient, n: int) -> Any:
            return client.get(f"{base}/messages/{ids[n % len(ids)]}", headers=auth)

        lat, responses, elapsed = asyncio.run(drive(get, args.seconds, args.concurrency))
        report("GET /api/v1/messages/{id}", lat, responses, elapsed, 200)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


if __name__ == "__main__":
    main()
