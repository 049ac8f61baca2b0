"""`import-events` benchmark: lines per second replayed through the services, on a scratch database.

Two workloads, each imported into a fresh organization of one scratch embedded PostgreSQL (or
``--database-url``): the busy day of tests/integration/services/test_import_events.py (customers write,
agents accept, reply, complete, customers come back) and a generated demo history (the `switchboard
demo` timeline, ~10,000 lines at the default size). Prints lines, seconds and ms per line.

    .venv/bin/python bench/bench_import.py [--busy-lines 1500] [--demo-days 27 --demo-per-weekday 50]

The tests check what an import writes; the figures here are the speed (the busy day used to be
asserted to take under 30 s in the test: that is this script's first line now).
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.cli.demo_history import HABITS, HistoryChannel, write_timeline  # noqa: E402
from switchboard.db.engine import embedded_server, ensure_database, sync_url  # noqa: E402
from switchboard.db.migrate import upgrade  # noqa: E402
from switchboard.importer import import_events  # noqa: E402
from tests.integration.services.test_import_events import timeline  # noqa: E402

KEY = b"k" * 32


def scratch_database() -> str:
    tmp = Path(tempfile.mkdtemp(prefix="sb-bench-import-"))
    atexit.register(shutil.rmtree, tmp, True)  # after the server stopped (atexit is LIFO)
    server = embedded_server(tmp / "pg")
    ensure_database(sync_url(server.get_uri("postgres")), "bench_import")
    return sync_url(server.get_uri("bench_import"))


def demo_timeline(path: Path, days: int, per_weekday: int) -> Path:
    users = [("lead@bench.test", "Lead", "manager")] + [(f"agent{i}@bench.test", f"Agent {i}", "agent")
                                                        for i in range(6)]
    return write_timeline(path, org="Bench Demo", timezone="Europe/Berlin",
                          business_hours={"mon": [["09:00", "17:00"]]},
                          channels=[HistoryChannel("wa", "whatsapp", "WA", 1.0, "+49151")], users=users,
                          habits={e: list(HABITS)[i % len(HABITS)] for i, (e, _, _) in enumerate(users)},
                          days=days, per_day=per_weekday, now=datetime(2026, 3, 2, tzinfo=UTC))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default=None, help="an empty database (default: a scratch embedded one)")
    ap.add_argument("--busy-lines", type=int, default=1_500)
    ap.add_argument("--demo-days", type=int, default=27)
    ap.add_argument("--demo-per-weekday", type=int, default=50)
    args = ap.parse_args()
    url = sync_url(args.database_url) if args.database_url else scratch_database()
    upgrade(url)
    engine = create_engine(url, pool_size=4)
    work = Path(tempfile.mkdtemp(prefix="sb-bench-import-files-"))
    atexit.register(shutil.rmtree, work, True)
    busy = work / "busy.jsonl"
    busy.write_text("\n".join(timeline(args.busy_lines)) + "\n")
    files = {"busy day": busy, "demo history": demo_timeline(work / "demo.jsonl", args.demo_days,
                                                             args.demo_per_weekday)}
    for name, path in files.items():
        started = time.perf_counter()
        rep = import_events(engine, path, KEY)
        took = time.perf_counter() - started
        print(f"import-events {name}: {rep.lines:,} lines ({rep.messages:,} messages, "
              f"{rep.conversations:,} conversations) in {took:.2f} s = {took / rep.lines * 1000:.2f} ms/line")
    engine.dispose()


if __name__ == "__main__":
    main()
