"""The incremental recompute of ``int_agent_concurrency_daily`` against the length of the history.

Synthetic ``int_assignments`` (50 agents, the same assignments per day, stored in time order as the
builder stores them) over ``--days`` days (several values); the model is built in full, then its keyed
run for every agent from the last day on is timed (the ``new`` step of an incremental build: the
model's SQL as rendered for a keyed run). ``--models DIR`` renders another version of the models (e.g.
a worktree of main) for a before/after comparison. Prints the best of ``--runs`` per history length.

    python bench/bench_concurrency_history.py --days 30 90 [--models /path/to/warehouse/models]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import duckdb

from warehouse.dag import MODELS_DIR, load_models
from warehouse.incremental import _fill_keys
from warehouse.render import render

NAME = "int_agent_concurrency_daily"


def setup(con: duckdb.DuckDBPyConnection, days: int, per_day: int) -> None:
    n = days * per_day
    con.execute(f"""
        create or replace table int_assignments as
        select i as assignment_id, 1::bigint as organization_id, (hash(i) % 50)::bigint as user_id,
               i // 3 as conversation_id,
               timestamptz '2026-01-01' + to_microseconds((i * 86400000000 // {per_day})::bigint) as assigned_at,
               case when hash(i * 7) % 100 = 0 then null
                    else timestamptz '2026-01-01' + to_microseconds((i * 86400000000 // {per_day})::bigint
                         + (60 + hash(i * 3) % 3600)::bigint * 1000000) end as ended_at
        from range({n}) t(i) order by i
    """)
    con.execute("alter table int_assignments add column assigned_local_at timestamp")
    con.execute("alter table int_assignments add column ended_local_at timestamp")
    con.execute("update int_assignments set assigned_local_at = (assigned_at at time zone 'Europe/Berlin'), "
                "ended_local_at = (ended_at at time zone 'Europe/Berlin')")
    # the rows that changed in the last hour: every agent's since_date is the last day
    con.execute("create or replace temp table _delta_int_assignments as select * from int_assignments "
                "where assigned_at >= (select max(assigned_at) from int_assignments) - interval 1 hour")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, nargs="+", default=[30, 90])
    ap.add_argument("--per-day", type=int, default=40_000, help="assignments per day (~ --scale 1)")
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    models = {m.name: m for m in load_models(args.models)}
    m = models[NAME]
    for days in args.days:
        con = duckdb.connect()
        setup(con, days, args.per_day)
        con.execute(f"create table {NAME} as {render(m, models)}")
        _fill_keys(con, m)
        sql = render(m, models, keyed=True)
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            con.execute(f"create or replace temp table _new_{NAME} as select * from ({sql})")
            times.append(time.perf_counter() - t)
        rows = con.execute(f"select count(*) from _new_{NAME}").fetchone()
        print(f"{days} days, {days * args.per_day:,} assignments: keyed recompute best {min(times) * 1000:.1f} ms "
              f"of {', '.join(f'{x * 1000:.0f}' for x in times)} ({rows[0] if rows else 0} rows)  "
              f"[load {'/'.join(f'{x:.1f}' for x in os.getloadavg())}]")
        con.close()


if __name__ == "__main__":
    main()
