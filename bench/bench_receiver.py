"""Webhook receiver benchmark: sustained signed deliveries per second stored durably, and latency.

Starts a scratch embedded PostgreSQL, a channel, and `switchboard serve --workers N` on 127.0.0.1,
then sends signed WhatsApp-shaped deliveries from C concurrent clients for D seconds (loopback only,
bounded in count and time) and prints throughput and p50/p95/p99 latency, then checks that every
delivery that got a 200 is in `webhook_events`.

    .venv/bin/python bench/bench_receiver.py --seconds 15 --concurrency 64 --workers 2

Goal on the 2-core machine: >= 1,000 deliveries/s with p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import hashlib
import hmac
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.db.engine import embedded_server, ensure_database, sync_url  # noqa: E402
from switchboard.db.migrate import upgrade  # noqa: E402
from switchboard.services.channels import create_channel  # noqa: E402
from switchboard.services.organizations import create_organization  # noqa: E402
from switchboard.settings import new_secret_key  # noqa: E402
from switchboard.types import Actor
from switchboard.uow import UnitOfWork  # noqa: E402

APP_SECRET = "bench-secret"


def payload(i: int) -> bytes:
    return json.dumps({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "100"},
            "contacts": [{"profile": {"name": f"Customer {i % 1000}"}, "wa_id": f"49151{i % 1000:07d}"}],
            "messages": [{"from": f"49151{i % 1000:07d}", "id": f"wamid.bench{i}", "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": f"hello {i}"}}],
        }}]}],
    }).encode()


async def load(url: str, seconds: float, concurrency: int) -> tuple[list[float], int, int]:
    latencies: list[float] = []
    ok = 0
    failed = 0
    counter = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        async def worker() -> None:
            nonlocal ok, failed, counter
            while time.perf_counter() < deadline:
                counter += 1
                body = payload(counter)
                sig = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=body, headers={"X-Hub-Signature-256": sig,
                                                                      "Content-Type": "application/json"})
                except httpx.HTTPError:
                    failed += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                if r.status_code == 200:
                    ok += 1
                else:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, ok, failed


def wrk_load(url: str, seconds: float, concurrency: int, tmp: Path, n_bodies: int = 20_000,
             rate: float | None = None) -> dict[str, float]:
    """Drive the receiver with wrk (C, one thread) so the client does not eat the server's CPU.

    Bodies are signed up front and cycled by a Lua script; each has its own message id.
    """
    import re
    import shutil

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --client httpx")
    lines = ["local bodies = {"]
    for i in range(n_bodies):
        body = payload(i)
        sig = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        lines.append(f'{{b=[==[{body.decode()}]==], s="{sig}"}},')
    lines.append("}")
    if rate:
        # Open loop: one schedule for the whole run, a send every 1/rate s. A connection ready for its
        # next request takes the next slot of the schedule and waits until it (wrk's delay()), so the
        # offered rate does not depend on how fast the receiver answers, as long as a connection is
        # free. When none is, a send starts late: `late` counts those sends and `max_late_ms` the worst
        # lateness (coordinated omission made visible instead of hidden).
        lines.append(f"""local ffi = require("ffi")
ffi.cdef[[ typedef struct {{ long tv_sec; long tv_nsec; }} sb_timespec; int clock_gettime(int, sb_timespec *); ]]
local ts = ffi.new("sb_timespec")
local function now_ms() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6 end
local interval = {1000.0 / rate!r}
local next_at = nil
late = 0
max_late_ms = 0
sent = 0
function delay()
  local now = now_ms()
  if next_at == nil then next_at = now end
  next_at = next_at + interval
  sent = sent + 1
  local wait = next_at - now
  if wait < -1 then
    late = late + 1
    if -wait > max_late_ms then max_late_ms = -wait end
  end
  if wait < 0 then return 0 end
  return wait
end""")
    lines.append("""local i = 0
request = function()
  i = i % #bodies + 1
  local x = bodies[i]
  return wrk.format("POST", nil, {["Content-Type"]="application/json", ["X-Hub-Signature-256"]=x.s}, x.b)
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("schedule: sent %d, late by more than 1 ms %d, max lateness %.1f ms\\n",
                           t:get("sent") or 0, t:get("late") or 0, t:get("max_late_ms") or 0))
  end
end""")
    script = tmp / "signed.lua"
    script.write_text("\n".join(lines))
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    print(out)

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": total, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50": ms("50"), "p90": ms("90"), "p99": ms("99")}


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU seconds of processes and all their descendants (the receiver's workers, or the
    PostgreSQL postmaster with its backends, WAL writer and checkpointer)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
    return total


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--port", type=int, default=18931)
    ap.add_argument("--client", choices=["wrk", "httpx"], default="wrk")
    ap.add_argument("--rate", type=float, default=None,
                    help="offered load in deliveries/s (wrk only); default: as fast as possible")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sb-bench-recv-"))
    atexit.register(shutil.rmtree, tmp, True)  # runs after the server stopped (atexit is LIFO)
    server = embedded_server(tmp / "pg")
    ensure_database(sync_url(server.get_uri("postgres")), "switchboard")
    url = sync_url(server.get_uri("switchboard"))
    upgrade(url)
    key = new_secret_key()
    os.environ["SWITCHBOARD_SECRET_KEY"] = key
    from switchboard.settings import get_settings

    get_settings.cache_clear()
    engine = create_engine(url)
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Bench")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", external_id="100",
                            secret_key=get_settings().secret_key_bytes(),
                            credentials={"app_secret": APP_SECRET, "access_token": "t", "verify_token": "v",
                                         "phone_number_id": "100"})
        uow.commit()
    env = dict(os.environ, DATABASE_URL=url, SWITCHBOARD_HOME=str(tmp), SWITCHBOARD_SECRET_KEY=key)
    proc = subprocess.Popen([sys.executable, "-m", "switchboard.cli.main", "serve", "--port", str(args.port),
                             "--workers", str(args.workers)], env=env)
    try:
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit("the receiver did not start")
        hook = f"{base}/webhooks/whatsapp/{ch.webhook_key}"
        asyncio.run(load(hook, 2, 8))  # warm-up (connection pools, channel cache)
        with engine.begin() as con:
            con.execute(text("truncate webhook_events"))
        pg_pid = postmaster_pid(tmp / "pg")
        cpu0 = cpu_seconds([proc.pid]), cpu_seconds([pg_pid]), time.perf_counter()
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        if args.client == "wrk":
            res = wrk_load(hook, args.seconds, args.concurrency, tmp, rate=args.rate)
            recv_cpu, pg_cpu = cpu_seconds([proc.pid]) - cpu0[0], cpu_seconds([pg_pid]) - cpu0[1]
            with engine.connect() as con:
                stored = con.execute(text("select count(*) from webhook_events where status = 'RECEIVED'")).scalar_one()
            ok = int(res["requests"] - res["non2xx"])
            print(f"receiver workers={args.workers} connections={args.concurrency} client=wrk")
            print(f"  deliveries answered 200: {ok:,}  non-2xx: {int(res['non2xx']):,}  stored: {stored:,}")
            print(f"  throughput: {res['rps']:,.0f} deliveries/s (stored durably before 200)")
            print(f"  latency ms: p50 {res['p50']:.1f}  p90 {res['p90']:.1f}  p99 {res['p99']:.1f}")
            if ok:
                print(f"  CPU per delivery: receiver {recv_cpu / ok * 1e6:,.0f} µs, PostgreSQL {pg_cpu / ok * 1e6:,.0f} µs"
                      f"  (load average after: {os.getloadavg()[0]:.2f})")
            assert stored >= ok, "a delivery answered 200 is missing from webhook_events"
            return
        t0 = time.perf_counter()
        lat, ok, failed = asyncio.run(load(hook, args.seconds, args.concurrency))
        elapsed = time.perf_counter() - t0
        with engine.connect() as con:
            stored = con.execute(text("select count(*) from webhook_events where status = 'RECEIVED'")).scalar_one()
        lat_ms = sorted(x * 1000 for x in lat)

        def pct(p: float) -> float:
            return lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * p))]

        print(f"receiver workers={args.workers} concurrency={args.concurrency} duration={elapsed:.1f}s")
        print(f"  deliveries answered 200: {ok:,}  failed: {failed:,}  stored: {stored:,}")
        print(f"  throughput: {ok / elapsed:,.0f} deliveries/s (stored durably before 200)")
        print(f"  latency ms: p50 {pct(0.5):.1f}  p95 {pct(0.95):.1f}  p99 {pct(0.99):.1f}  "
              f"max {lat_ms[-1]:.1f}  mean {statistics.fmean(lat_ms):.1f}")
        assert stored >= ok, "a delivery answered 200 is missing from webhook_events"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        engine.dispose()


if __name__ == "__main__":
    main()
