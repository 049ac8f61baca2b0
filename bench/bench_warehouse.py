"""Warehouse benchmark: 10 M messages / 1 M conversations (``--scale 0.1`` for a tenth).

Generates the system of record in Postgres (DuckDB writes the rows as CSV, psycopg ``COPY … FROM
STDIN`` loads them), then prints:

* the full warehouse build time;
* the incremental build time after one more hour of traffic;
* one key metric — response time per agent and local day (count, mean, median, p90, min, max over
  customer turns, bot messages excluded, reopen = new cycle) — computed from the raw rows by the same
  SQL logic, in two equivalent formulations, in Postgres (its tables, work_mem 1GB, an index for
  COMPLETED events) and in DuckDB (the warehouse's raw tables), each warm (best of ``--runs`` after a
  warm-up), results compared row by row, side by side with the ratio (each engine credited with its
  faster formulation; the same-formulation ratios are printed too); and the same figures read from the
  mart ``agent_daily_metrics``.

Every figure is printed with the load average (the machine is shared).

Usage: ``python bench/bench_warehouse.py --scale 0.1`` (embedded Postgres under a temp dir, or
``--database-url``). ``--scale 3`` generates 30 M messages over 90 days (``--span-days``): the same
traffic per hour as ``--scale 1`` with three times the history, so its incremental build shows whether
the cost follows the new rows or the size of the warehouse (``--skip-readers --skip-postgres-metric``
keep that run to the builds). Goals on 2 cores: full <= 30 s, incremental <= 1 s (and flat with ``--scale``),
>= 10x faster than Postgres, the analytics page's heaviest read p95 <= 100 ms while a build runs
(``--readers`` reader processes, ``--read-pause`` seconds between reads, time it during a full build
running at ``--build-nice``, the product default 10).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg
from sqlalchemy.engine import make_url

from switchboard.db.engine import embedded_server, ensure_database, sync_url
from switchboard.db.migrate import upgrade
from warehouse import queries
from warehouse.build import DEFAULT_BUILD_NICE, build, maintain
from warehouse.extract import conninfo
from warehouse.publish import work_file

T_END = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
BUILD_NICE = [DEFAULT_BUILD_NICE]  # --build-nice
READ_PAUSE = [1.0]  # --read-pause
SPAN_DAYS = 30
AGENTS = 50
CHANNELS = 4
MSGS_PER_CONV = 10

GEN_SQL = """
create or replace table g_conv as
select
    c as id,
    1 + (c % {channels}) as channel_id,
    c as contact_id,
    1000 + (hash(c, 'agent') % {agents})::bigint as agent_id,
    1000 + (hash(c, 'agent2') % {agents})::bigint as agent2_id,
    c % 10 = 0 as reopens,
    ?::timestamptz - interval {span_days} day + to_seconds((c - 1) * (({span_days} * 86400.0 + 3600) / {n_conv})) as start_at
from range(1, {n_conv} + 1) t(c);

create or replace table g_msg_raw as
select
    c.id as conversation_id,
    c.channel_id,
    k,
    c.start_at + to_seconds(k * 60 + (hash(c.id, k) % 40)::int)
        + case when c.reopens and k >= 6 then interval 1 day else interval 0 second end as sent_at,
    case when k % 2 = 0 then 'INBOUND' else 'OUTBOUND' end as direction,
    case when k % 2 = 0 then 'customer' when hash(c.id, k, 'bot') % 20 = 0 then 'bot' else 'agent' end as author_kind,
    case when k % 2 = 1 and hash(c.id, k, 'bot') % 20 <> 0
         then case when c.reopens and k >= 6 then c.agent2_id else c.agent_id end end as author_user_id,
    repeat('x', 5 + (hash(c.id, k, 'len') % 80)::int) as body
from g_conv c, range({msgs}) r(k);

create or replace table g_evt_raw as
select conversation_id, type, at_ts, actor from (
    select id as conversation_id, 'CREATED' as type, start_at as at_ts, null::bigint as actor from g_conv
    union all
    select id, 'ACCEPTED', start_at + interval 30 second, agent_id from g_conv
    union all
    select id, 'COMPLETED', start_at + interval 330 second, agent_id from g_conv where reopens
    union all
    select c.id, 'REOPENED', m.sent_at, null from g_conv c join g_msg_raw m on m.conversation_id = c.id and m.k = 6
    where c.reopens
    union all
    select c.id, 'ACCEPTED', m.sent_at + interval 30 second, c.agent2_id
    from g_conv c join g_msg_raw m on m.conversation_id = c.id and m.k = 6 where c.reopens
    union all
    select c.id, 'COMPLETED', m.sent_at + interval 45 second,
        case when c.reopens then c.agent2_id else c.agent_id end
    from g_conv c join g_msg_raw m on m.conversation_id = c.id and m.k = {msgs} - 1
    union all
    select conversation_id, case when direction = 'INBOUND' then 'MESSAGE_RECEIVED' else 'MESSAGE_SENT' end,
        sent_at, author_user_id from g_msg_raw
);

create or replace table g_msg as
select row_number() over (order by sent_at, conversation_id, k) as id, * from g_msg_raw;
create or replace table g_evt as
select row_number() over (order by at_ts, conversation_id, type) as id, * from g_evt_raw;
"""

# The key metric, one customer turn per (conversation, cycle, replies before): every customer message
# and human reply in time order per conversation, with the COMPLETED events (a COMPLETED ends its cycle
# after any message sent at the same instant); a turn's customer messages and the reply that answers it
# share (cycle, replies before). Two equivalent formulations of the counters, run on both engines:
#   "two counters": cycle = running count of COMPLETED, replies before = running count of replies;
#   "packed counter": one running sum of (COMPLETED << 32 | reply) — one window aggregate and a
#   two-column group key (fast in DuckDB; in Postgres sum(bigint) accumulates in numeric: slower).
KEY_METRIC = """
with classified as (
    select id, conversation_id, sent_at, author_user_id,
           case when direction = 'INBOUND' and author_kind = 'customer' then 0
                when direction = 'OUTBOUND' and author_kind = 'agent' and status <> 'FAILED' then 1
           end as step
    from {messages}
),
timeline as (
    select id, conversation_id, sent_at, author_user_id, 1 as kind, {step} as step
    from classified where step is not null
    union all
    select id, conversation_id, occurred_at, null, 2, {completion}
    from {events} where type = 'COMPLETED'
),
seq as (
    select conversation_id, sent_at, author_user_id, kind, step, {counters}
    from timeline
    window w as (partition by conversation_id order by sent_at, kind, id rows between unbounded preceding and current row)
    {messages_only}
),
answered as (
    select {any}(author_user_id) filter (where step = 1) as author_user_id,
           {any}(sent_at) filter (where step = 1) as responded_at,
           {response_ms} as response_ms
    from seq
    {where_messages}
    group by conversation_id, {turn_key}
    having count(*) filter (where step = 0) > 0 and count(*) filter (where step = 1) > 0
)
{daily}
"""

FORMULATIONS = {
    "two counters": {"step": "step", "completion": "0",
                     "counters": "sum((kind = 2)::int) over w as cycle_number, sum(step) over w - step as replies_before",
                     "turn_key": "cycle_number, replies_before"},
    "packed counter": {"step": "step::bigint", "completion": "4294967296",
                       "counters": "sum(step) over w - (step = 1)::int as turn_key", "turn_key": "turn_key"},
}

ENGINES = {
    "postgres": {
        "messages": "messages", "events": "conversation_events", "any": "max",
        "messages_only": "", "where_messages": "where kind = 1",
        "response_ms": "extract(epoch from max(sent_at) filter (where step = 1) "
                       "- min(sent_at) filter (where step = 0)) * 1000",
        "daily": """
select author_user_id, (responded_at at time zone 'Europe/Berlin')::date as day, count(*),
       avg(response_ms), (percentile_cont(array[0.5, 0.9]) within group (order by response_ms))[1],
       (percentile_cont(array[0.5, 0.9]) within group (order by response_ms))[2], min(response_ms), max(response_ms)
from answered where author_user_id is not null group by 1, 2""",
    },
    "duckdb": {
        "messages": "raw_messages", "events": "raw_conversation_events", "any": "any_value",
        "messages_only": "qualify kind = 1", "where_messages": "",
        "response_ms": "epoch_ms(any_value(sent_at) filter (where step = 1)) "
                       "- epoch_ms(min(sent_at) filter (where step = 0))",
        # the local day of each quarter hour that has replies: one time zone conversion per quarter hour
        # instead of one per row (DuckDB's ICU conversion is per row and slow; Postgres' is not). In
        # both engines median and p90 are one aggregate (identical aggregates are computed once): one
        # sort of each group's values instead of two
        "daily": """,
quarters as (
    select q, timezone('Europe/Berlin', make_timestamptz(q))::date as day
    from (select distinct epoch_us(responded_at) // 900000000 * 900000000 as q from answered)
)
select a.author_user_id, d.day, count(*), avg(a.response_ms),
       quantile_cont(a.response_ms, [0.5, 0.9])[1], quantile_cont(a.response_ms, [0.5, 0.9])[2],
       min(a.response_ms), max(a.response_ms)
from answered as a
join quarters as d on d.q = epoch_us(a.responded_at) // 900000000 * 900000000
where a.author_user_id is not null
group by all""",
    },
}


def key_metric_sql(engine: str, formulation: str) -> str:
    return KEY_METRIC.format(**ENGINES[engine], **FORMULATIONS[formulation])


def _copy(pg: psycopg.Connection, duck: duckdb.DuckDBPyConnection, table: str, select: str,
          cols: str, params: Sequence[object], tmp: Path) -> int:
    path = tmp / f"{table}.csv"
    duck.execute(f"copy ({select}) to '{path}' (header false)", list(params))
    n = 0
    with pg.cursor() as cur, cur.copy(f"copy {table} ({cols}) from stdin (format csv)") as cp, \
            open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            cp.write(chunk)
            n += chunk.count(b"\n")
    path.unlink()
    return n


BULK_TABLES = ("contacts", "conversations", "messages", "conversation_events")


def _drop_indexes(pg: psycopg.Connection) -> list[str]:
    """Drop the bulk-loaded tables' secondary indexes (not those behind a constraint); their definitions.

    Maintaining them row by row (a trigram GIN index on message bodies among them) made the initial
    COPY of 10 M rows the bench's slowest step; building them once after the load is several times faster.
    """
    rows = pg.execute("select indexname, indexdef from pg_indexes i where schemaname = 'public' "
                      "and tablename = any(%s) and not exists (select 1 from pg_constraint c "
                      "where c.conname = i.indexname)", [list(BULK_TABLES)]).fetchall()
    for name, _ in rows:
        pg.execute(f'drop index "{name}"')
    return [str(d) for _, d in rows]


def _create_indexes(pg: psycopg.Connection, definitions: list[str]) -> None:
    pg.execute("select set_config('maintenance_work_mem', '1GB', true)")
    pg.execute("select set_config('max_parallel_maintenance_workers', '2', true)")
    for d in definitions:
        pg.execute(d)


def load(pg: psycopg.Connection, duck: duckdb.DuckDBPyConnection, lo: datetime | None, hi: datetime,
         tmp: Path, first: bool) -> dict[str, int]:
    """COPY the generated rows with time in (lo, hi] into Postgres (the first load without secondary
    indexes, built after it)."""
    cond = "{col} <= ?" if lo is None else "{col} > ? and {col} <= ?"
    p = [hi] if lo is None else [lo, hi]
    counts = {}
    indexes = _drop_indexes(pg) if first else []
    if first:
        counts["contacts"] = _copy(pg, duck, "contacts",
                                   "select id, 1, 'whatsapp', 'p' || id, 'Contact ' || id from g_conv",
                                   "id, organization_id, provider, provider_contact_id, display_name", [], tmp)
        counts["conversations"] = _copy(
            pg, duck, "conversations",
            "select id, 1, channel_id, contact_id, 'PENDING', start_at, start_at, start_at from g_conv "
            "where start_at <= ?",
            "id, organization_id, channel_id, contact_id, status, created_at, updated_at, last_message_at", [hi], tmp)
    else:
        counts["conversations"] = _copy(
            pg, duck, "conversations",
            "select id, 1, channel_id, contact_id, 'PENDING', start_at, start_at, start_at from g_conv "
            "where start_at > ? and start_at <= ?",
            "id, organization_id, channel_id, contact_id, status, created_at, updated_at, last_message_at", p, tmp)
    counts["messages"] = _copy(
        pg, duck, "messages",
        "select id, 1, conversation_id, channel_id, direction, author_kind, author_user_id, body, "
        "case when direction = 'INBOUND' then 'DELIVERED' else 'SENT' end, 'g' || id, sent_at from g_msg where "
        + cond.format(col="sent_at"),
        "id, organization_id, conversation_id, channel_id, direction, author_kind, author_user_id, body, status, "
        "provider_message_id, sent_at", p, tmp)
    counts["conversation_events"] = _copy(
        pg, duck, "conversation_events",
        "select id, 1, conversation_id, type, actor, at_ts from g_evt where " + cond.format(col="at_ts"),
        "id, organization_id, conversation_id, type, actor_user_id, occurred_at", p, tmp)
    # conversation state as of hi
    duck.execute("""
        create or replace table g_state as
        select conversation_id, arg_max(type, at_ts) as last_type, arg_max(actor, at_ts) as last_actor,
               max(at_ts) as last_at
        from g_evt where type in ('CREATED', 'ACCEPTED', 'COMPLETED', 'REOPENED') and at_ts <= ?
        group by all
    """, [hi])
    _copy(pg, duck, "bench_state",
          "select conversation_id, case last_type when 'ACCEPTED' then 'ASSIGNED' when 'COMPLETED' then 'COMPLETED' "
          "else 'PENDING' end, case when last_type = 'ACCEPTED' then last_actor end, last_at from g_state "
          + ("" if lo is None else "where last_at > ?"),
          "conversation_id, status, assigned_user_id, last_at", [] if lo is None else [lo], tmp)
    with pg.cursor() as cur:
        cur.execute("update conversations c set status = s.status, assigned_user_id = s.assigned_user_id, "
                    "updated_at = s.last_at from bench_state s where s.conversation_id = c.id")
        cur.execute("truncate bench_state")
        for table in BULK_TABLES:
            cur.execute(f"select setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(select coalesce(max(id), 1) from {table}))")
    if indexes:
        t = time.perf_counter()
        _create_indexes(pg, indexes)
        print(f"  {len(indexes)} secondary indexes built after the load in {time.perf_counter() - t:.1f} s")
    pg.commit()
    return counts


PG_SETTINGS = {"work_mem": "1GB", "max_parallel_workers_per_gather": "2"}


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _normalize(rows: Sequence[Sequence[object]]) -> list[tuple[object, ...]]:
    """(agent, day, count, mean, median, p90, min, max) rounded to the millisecond, sorted."""
    out = []
    for r in rows:
        out.append((int(r[0]), str(r[1]), int(r[2]), *(round(float(x), 0) for x in r[3:])))  # type: ignore[call-overload,arg-type]
    return sorted(out)


def _timed(run: Callable[[], list[tuple[object, ...]]], runs: int) -> tuple[list[float], list[tuple[object, ...]]]:
    rows = run()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        rows = run()
        times.append(time.perf_counter() - t)
    return times, rows


def compare_key_metric(pg: psycopg.Connection, wh: Path, *, runs: int, skip_postgres: bool) -> str:
    """The key metric from the raw tables in both engines, each warm (best of ``runs`` after a warm-up).

    Both formulations (``FORMULATIONS``) run on both engines on the same raw rows (DuckDB reads the
    warehouse's raw tables, extracted from those Postgres tables); every result is compared row by row
    and each engine is credited with its faster formulation. Postgres gets its best shot: ``work_mem``
    large enough that its sorts stay in memory (1 GB: the 11 M-row window sort takes ~0.9 GB; 256 MB
    spilled and was ~7% slower), parallel workers allowed, fresh statistics, and indexes for the access
    paths the query can use (the messages thread index (conversation_id, sent_at, id) exists; a partial
    index on COMPLETED events is added).
    """
    results: dict[tuple[str, str], tuple[float, list[tuple[object, ...]]]] = {}
    with closing(duckdb.connect(str(work_file(wh)), read_only=True)) as wcon:  # the builder's raw tables
        print("key metric (response time per agent per local day: count, mean, median, p90, min, max):")
        wcon.execute("set TimeZone = 'UTC'")
        for formulation in FORMULATIONS:
            sql = key_metric_sql("duckdb", formulation)
            times, rows = _timed(lambda sql=sql: wcon.execute(sql).fetchall(), runs)  # type: ignore[misc]
            results["duckdb", formulation] = (min(times), rows)
            print(f"  DuckDB, {formulation}: best {min(times):.2f} s of {', '.join(f'{x:.2f}' for x in times)} (warm, "
                  f"{len(rows)} rows)  [load {_load()}]")
        t = time.perf_counter()
        mart = wcon.execute("select agent_user_id, metric_date, count_responses, avg_response_time_ms, "
                            "median_response_time_ms, p90_response_time_ms, min_response_time_ms, max_response_time_ms "
                            "from agent_daily_metrics where count_responses > 0").fetchall()
        mart_s = time.perf_counter() - t
    reference = _normalize(results["duckdb", "two counters"][1])
    print(f"  reading the mart agent_daily_metrics: {mart_s * 1000:.0f} ms ({len(mart)} rows; "
          f"{'identical to' if _normalize(mart) == reference else 'DIFFERENT from'} the key metric)")
    if skip_postgres:
        return "skipped"
    with pg.cursor() as cur:
        for k, v in PG_SETTINGS.items():
            cur.execute("select set_config(%s, %s, false)", [k, v])
        cur.execute("create index if not exists bench_ix_events_completed on conversation_events "
                    "(conversation_id, occurred_at) where type = 'COMPLETED'")
        cur.execute("analyze messages")
        cur.execute("analyze conversation_events")
        pg.commit()

        def pg_run(sql: str) -> list[tuple[object, ...]]:
            cur.execute(sql)
            return cur.fetchall()

        settings = ", ".join(f"{k}={v}" for k, v in PG_SETTINGS.items())
        for formulation in FORMULATIONS:
            times, rows = _timed(lambda f=formulation: pg_run(key_metric_sql("postgres", f)), runs)  # type: ignore[misc]
            results["postgres", formulation] = (min(times), rows)
            print(f"  Postgres ({settings}), {formulation}: best {min(times):.2f} s of "
                  f"{', '.join(f'{x:.2f}' for x in times)} (warm)  [load {_load()}]")
    same = all(_normalize(rows) == reference for _, rows in results.values())
    print(f"  results of both engines and formulations {'identical' if same else 'DIFFERENT'} ({len(reference)} rows)")
    pg_best = min(results["postgres", f][0] for f in FORMULATIONS)
    duck_best = min(results["duckdb", f][0] for f in FORMULATIONS)
    for f in FORMULATIONS:
        print(f"  ratio with the {f} formulation on both: {results['postgres', f][0] / results['duckdb', f][0]:.1f}x")
    ratio = pg_best / duck_best
    print(f"  ratio Postgres / DuckDB, each with its faster formulation of the same metric from the same raw rows: "
          f"{ratio:.1f}x (goal >= 10x)")
    return f"{ratio:.1f}x"


# the analytics page's reads over the last 30 days (app/views/analytics.py); the slowest is timed during a build
PAGE_READS = {
    "response time per agent": "queries.time_metric_stats(wh, 1, 'response', start, end, group_by='agent')",
    "response time per day": "queries.response_times(wh, 1, start, end, group_by='day')",
    "first response (business) per channel": "queries.time_metric_stats(wh, 1, 'first_response', start, end, "
                                             "group_by='channel', business_hours=True)",
    "headline tiles": "queries.headline(wh, 1, start, end)",
    "response time distribution": "queries.time_metric_distribution(wh, 1, 'response', start, end)",
    "heatmap": "queries.hourly_volume(wh, 1, start, end)",
    "SLA per day": "queries.sla_daily(wh, 1, start, end)",
    "SLA breaches": "queries.sla_breaches(wh, 1, start, end)",
    "live queue": "queries.live_queue(wh, 1)",
    "agent load": "queries.agent_load(wh, 1)",
}

READER = """
import json, sys, time
from datetime import date
from pathlib import Path
from warehouse import queries
wh, stop, read = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
start, end = date.fromisoformat(sys.argv[4]), date.fromisoformat(sys.argv[5])
pause = float(sys.argv[6])
eval(read)  # attach once, warm
print("ready", flush=True)
while not stop.exists():
    t = time.perf_counter()
    try:
        eval(read)
        print(json.dumps([time.time(), time.perf_counter() - t]), flush=True)
    except Exception as exc:
        print(json.dumps([time.time(), None, repr(exc)]), flush=True)
    time.sleep(pause)  # a manager reading the page, not a loop that would leave a build no CPU at all
"""


def reads_during_build(url: str, wh: Path, tmp: Path, *, readers: int, also: Sequence[str] = ()) -> str:
    """The page's slowest read, timed by ``readers`` reader processes in a loop while a full build runs
    (then each read named in ``also``, during another full build each)."""
    end = (T_END - timedelta(days=1)).date()
    start = end - timedelta(days=29)
    slowest = ("", 0.0)
    names = {"queries": queries, "wh": wh, "start": start, "end": end}
    for name, read in PAGE_READS.items():
        times, _ = _timed(lambda read=read: [eval(read, names)], 3)  # type: ignore[misc]  # noqa: S307 (our own constants)
        print(f"  page read {name}: best {min(times) * 1000:.0f} ms  [load {_load()}]")
        slowest = max(slowest, (name, min(times)), key=lambda x: x[1])
    print(f"heaviest page read: {slowest[0]}")
    p95 = _read_during_build(url, wh, tmp, slowest[0], start, end, readers=readers)
    for name in also:
        _read_during_build(url, wh, tmp, name, start, end, readers=readers)
    return p95


def _read_during_build(url: str, wh: Path, tmp: Path, name: str, start: date, end: date, *, readers: int) -> str:
    stop = tmp / "stop-readers"
    stop.unlink(missing_ok=True)
    outs = [tmp / f"reader-{i}.out" for i in range(readers)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", READER, str(wh), str(stop), PAGE_READS[name],
                               start.isoformat(), end.isoformat(), str(READ_PAUSE[0])], env=env,
                              stdout=o.open("w"))
             for o in outs]
    try:
        while not all(o.read_text().startswith("ready") for o in outs):
            time.sleep(0.2)
        time.sleep(2)
        t0 = time.time()
        rep = build(url, wh, full=True, now=T_END + timedelta(hours=1), nice=BUILD_NICE[0])
        t1 = time.time()
        time.sleep(1)
    finally:
        stop.touch()
        for p in procs:
            p.wait(timeout=120)
    lines = [json.loads(line) for o in outs for line in o.read_text().split("\n")[1:-1]]
    during = sorted(x[1] for x in lines if t0 <= x[0] <= t1 and x[1] is not None)
    idle = sorted(x[1] for x in lines if not t0 <= x[0] <= t1 and x[1] is not None)
    failed = [x for x in lines if x[1] is None]

    def pct(xs: list[float], q: float) -> str:
        return f"{xs[min(len(xs) - 1, int(q * len(xs)))] * 1000:.0f} ms" if xs else "n/a"

    print(f"page read {name!r} by {readers} reader processes ({READ_PAUSE[0]:g} s between reads) during a full "
          f"build at nice {BUILD_NICE[0]} ({rep.seconds:.1f} s): "
          f"{len(during)} reads, p50 {pct(during, 0.5)}, p95 {pct(during, 0.95)}, max {pct(during, 1.0)}; "
          f"outside the build: {len(idle)} reads, p50 {pct(idle, 0.5)}, p95 {pct(idle, 0.95)}; "
          f"{len(failed)} failed{': ' + failed[0][2] if failed else ''}  [load {_load()}]")
    return pct(during, 0.95)


def _save_template(url: str, base: str, name: str) -> None:
    """Keep the loaded rows as a template database for later ``--pg-dir`` runs."""
    t = time.perf_counter()
    admin_url = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(conninfo(admin_url), autocommit=True) as admin:
        admin.execute(f'create database "{base}" template "{name}" strategy file_copy')
    print(f"saved as the template {base} in {time.perf_counter() - t:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = 10 M messages / 1 M conversations")
    ap.add_argument("--database-url", default=None, help="external Postgres (default: embedded, temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated database and warehouse")
    ap.add_argument("--skip-postgres-metric", action="store_true")
    ap.add_argument("--readers", type=int, default=2,
                    help="reader processes timing the heaviest page read during a build (the machine has 2 cores)")
    ap.add_argument("--span-days", type=int, default=None,
                    help="days of history (default 30 x max(1, scale): the traffic per hour is the same at every "
                         "--scale >= 1, so --scale 3 has three times the history and the same hour of new traffic)")
    ap.add_argument("--also-time-read", action="append", default=[], choices=list(PAGE_READS),
                    help="also time this page read during a full build of its own (after the heaviest one)")
    ap.add_argument("--skip-readers", action="store_true",
                    help="skip the page reads during a full build and the maintenance (e.g. a --scale 3 run that "
                         "only shows the incremental build staying flat)")
    ap.add_argument("--runs", type=int, default=2, help="timed runs of the key metric per engine (after a warm-up)")
    ap.add_argument("--idle-builds", type=int, default=0,
                    help="after the timed incremental build, this many more with no new traffic (the fixed cost of "
                         "a build: open conversations, lake attach and commit, work file), each printed")
    ap.add_argument("--skip-load", action="store_true",
                    help="--database-url already holds this --scale's rows up to the end time (loaded by an earlier "
                         "run with --keep): skip loading them (the extra hour is still loaded)")
    ap.add_argument("--build-nice", type=int, default=DEFAULT_BUILD_NICE,
                    help="the builds' CPU priority (WAREHOUSE_BUILD_NICE; 0 = the readers' own priority)")
    ap.add_argument("--read-pause", type=float, default=READ_PAUSE[0],
                    help="seconds each reader process waits between two reads during the full build (0: back to "
                         "back, which leaves a build below the readers' priority almost no CPU on 2 cores)")
    ap.add_argument("--pg-dir", type=Path, default=None,
                    help="a persistent embedded Postgres data directory: the generated rows are loaded once into a "
                         "template database there, and every later run starts from a copy of it (for repeated runs)")
    args = ap.parse_args()

    BUILD_NICE[0], READ_PAUSE[0] = args.build_nice, args.read_pause
    n_conv = max(1000, int(1_000_000 * args.scale))
    if args.span_days is None:
        args.span_days = round(SPAN_DAYS * max(1.0, args.scale))
    tmp = Path(tempfile.mkdtemp(prefix="sb-bench-wh-"))
    try:
        run(args, n_conv, tmp)
    finally:
        if not args.keep:  # also after a failure: the data is gigabytes at --scale 1
            shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)


def run(args: argparse.Namespace, n_conv: int, tmp: Path) -> None:
    reuse = False
    if args.database_url:
        url = sync_url(args.database_url)
    elif args.pg_dir:
        server = embedded_server(args.pg_dir)
        days = "" if args.span_days == SPAN_DAYS else f"_{args.span_days}d"
        base, name = f"bench_base_{n_conv}{days}", f"bench_{n_conv}{days}"
        with psycopg.connect(conninfo(sync_url(server.get_uri("postgres"))), autocommit=True) as admin:
            reuse = admin.execute("select 1 from pg_database where datname = %s", [base]).fetchone() is not None
            admin.execute(f'drop database if exists "{name}" with (force)')
            if reuse:
                t = time.perf_counter()
                admin.execute(f'create database "{name}" template "{base}" strategy file_copy')
                print(f"database copied from the template {base} in {time.perf_counter() - t:.1f} s")
            else:
                admin.execute(f'create database "{name}"')
        url = sync_url(server.get_uri(name))
    else:
        server = embedded_server(tmp / "pgdata")
        ensure_database(server.get_uri("postgres"), "bench")
        url = sync_url(server.get_uri("bench"))
    print(f"scale {args.scale}: {n_conv:,} conversations, {n_conv * MSGS_PER_CONV:,} messages over {args.span_days} days; "
          f"work dir {tmp}")
    upgrade(url)

    t = time.perf_counter()
    # on disk, memory-capped: in memory the generated rows (30 M with bodies at --scale 3) and the build's
    # DuckDB together outgrew the machine's 23 GB
    duck = duckdb.connect(str(tmp / "generate.duckdb"))
    duck.execute("set memory_limit = '3GB'")
    duck.execute("set TimeZone = 'UTC'")
    for stmt in GEN_SQL.format(channels=CHANNELS, agents=AGENTS, span_days=args.span_days, n_conv=n_conv,
                               msgs=MSGS_PER_CONV).split(";"):
        if stmt.strip():
            duck.execute(stmt, [T_END] if "?" in stmt else [])
    print(f"generated in DuckDB: {time.perf_counter() - t:.1f} s")

    with psycopg.connect(conninfo(url)) as pg:
        with pg.cursor() as cur:
            cur.execute("set session_replication_role = replica")  # bulk load: skip FK triggers
            cur.execute("create unlogged table if not exists bench_state (conversation_id bigint, status text, "
                        "assigned_user_id bigint, last_at timestamptz)")
            cur.execute("insert into organizations (id, name, timezone, business_hours) values "
                        "(1, 'Bench', 'Europe/Berlin', %s) on conflict do nothing",
                        ['{"mon": [["09:00", "18:00"]], "tue": [["09:00", "18:00"]], "wed": [["09:00", "18:00"]], '
                         '"thu": [["09:00", "18:00"]], "fri": [["09:00", "17:00"]]}'])
            for ch in range(1, CHANNELS + 1):
                cur.execute("insert into channels (id, organization_id, key, provider, name, webhook_key) "
                            "values (%s, 1, %s, 'whatsapp', %s, %s) on conflict do nothing",
                            [ch, f"ch{ch}", f"Channel {ch}", f"bench-{ch}"])
            for a in range(AGENTS):
                cur.execute("insert into users (id, organization_id, email, name, role) values "
                            "(%s, 1, %s, %s, 'agent') on conflict do nothing",
                            [1000 + a, f"agent{a}@bench.io", f"Agent {a}"])
        pg.commit()
        if not (args.skip_load or reuse):
            t = time.perf_counter()
            counts = load(pg, duck, None, T_END, tmp, first=True)
            print(f"loaded into Postgres with COPY in {time.perf_counter() - t:.1f} s: {counts}")
            # as autovacuum leaves a live database: statistics, visibility map and hint bits set (else the
            # first full extract pays for setting hint bits on 10 M rows: ~1.5x slower)
            pg.commit()
            pg.autocommit = True
            t = time.perf_counter()
            pg.execute("vacuum (freeze, analyze)")
            pg.autocommit = False
            print(f"vacuumed in {time.perf_counter() - t:.1f} s")
            if args.pg_dir:
                pg.close()
                _save_template(url, base, name)
    with psycopg.connect(conninfo(url)) as pg:
        wh = tmp / "warehouse"
        rep = build(url, wh, full=True, now=T_END, nice=BUILD_NICE[0])
        full_s = rep.seconds
        print(f"full build: {full_s:.2f} s  (extract {rep.timings.get('extract', 0):.2f} s; "
              f"rows {rep.rows_extracted})  [load {_load()}]")
        slow = sorted(((v, k) for k, v in rep.timings.items() if "/" not in k or k.startswith("extract")),
                      reverse=True)[:12]
        print("  slowest steps: " + ", ".join(f"{k} {v:.2f}s" for v, k in slow))

        t = time.perf_counter()
        hour = load(pg, duck, T_END, T_END + timedelta(hours=1), tmp, first=False)
        print(f"one hour of new traffic loaded in {time.perf_counter() - t:.1f} s: {hour}")
        rep2 = build(url, wh, now=T_END + timedelta(hours=1), nice=BUILD_NICE[0])
        inc_s = rep2.seconds
        print(f"incremental build: {inc_s:.2f} s  ({rep2.conversations_recomputed} conversations recomputed; "
              f"keys recomputed {rep2.keys_recomputed})  [load {_load()}]")
        slow = sorted(((v, k) for k, v in rep2.timings.items() if "/" not in k or k.startswith("extract")),
                      reverse=True)[:14]
        print("  slowest steps: " + ", ".join(f"{k} {v:.2f}s" for v, k in slow))
        keyed = sorted(k for k in rep2.timings if k.split("/")[0] in rep2.keys_recomputed)
        print("  keyed models: " + ", ".join(f"{k} {rep2.timings[k]:.3f}s" for k in keyed))

        for i in range(args.idle_builds):
            rep3 = build(url, wh, now=T_END + timedelta(hours=1, minutes=5 * (i + 1)), nice=BUILD_NICE[0])
            slow = sorted(((v, k) for k, v in rep3.timings.items() if "/" not in k), reverse=True)[:8]
            print(f"incremental build with no new traffic: {rep3.seconds:.2f} s ({rep3.conversations_recomputed} "
                  f"conversations recomputed; " + ", ".join(f"{k} {v:.2f}s" for v, k in slow) + f")  [load {_load()}]")

        metric = compare_key_metric(pg, wh, runs=args.runs, skip_postgres=args.skip_postgres_metric)
    p95 = "skipped"
    if not args.skip_readers:
        p95 = reads_during_build(url, wh, tmp, readers=args.readers, also=args.also_time_read)
        t = time.perf_counter()
        maintain(url, wh, keep=timedelta(0), nice=BUILD_NICE[0])
        print(f"maintenance (merge, expire, clean): {time.perf_counter() - t:.2f} s  [load {_load()}]")
    print(f"\nSUMMARY scale={args.scale}: full {full_s:.2f} s (goal <= 30), incremental {inc_s:.2f} s (goal <= 1), "
          f"key metric Postgres/DuckDB {metric} (goal >= 10x), heaviest analytics read p95 during a full build "
          f"{p95} (goal <= 100 ms); builds at nice {BUILD_NICE[0]}; load average {_load()}")


if __name__ == "__main__":
    main()
