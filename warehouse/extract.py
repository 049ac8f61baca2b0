"""Extract the system of record from Postgres into ``raw_*`` tables of a DuckDB file.

Two paths, one column list per table (``RAW_TABLES``):

* full: DuckDB's postgres extension (``ATTACH … (TYPE postgres, READ_ONLY)``) runs each table's
  constant select list in Postgres through ``postgres_query`` and streams it with binary COPY;
* incremental: psycopg with bound parameters fetches what changed since the watermarks
  (append-only tables by id, re-read with an overlap so that transactions committing out of id order
  are not missed; messages and conversations touched by new events are re-read by id) and upserts it.

The set of conversations touched by an incremental extract is left in the temp table ``_scope``;
the runner recomputes exactly those conversations.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
from sqlalchemy.engine import make_url

# ids re-read below each watermark: a transaction that took an id earlier but committed after the
# last build is still picked up (rows already present are skipped / replaced).
OVERLAP_IDS = 10_000


@dataclass(frozen=True)
class RawTable:
    name: str  # raw_<name> in DuckDB, <name> in Postgres
    select: str  # constant select list run in Postgres (no values; filters are bound separately)
    key: str = "id"
    mode: str = "snapshot"  # snapshot (small: reloaded every build) | append (by id) | upsert (by id)


LIFECYCLE_TYPES = ("CREATED", "ACCEPTED", "RELEASED", "REASSIGNED", "COMPLETED", "REOPENED",
                   "AGENT_DISCONNECTED")

RAW_TABLES: tuple[RawTable, ...] = (
    RawTable("organizations", "select id, name, timezone, business_hours::text as business_hours, "
             "sla_first_response_ms, sla_resolution_ms, created_at from organizations"),
    RawTable("channels", "select id, organization_id, key, provider, name, status, "
             "business_hours::text as business_hours, created_at from channels"),
    RawTable("users", "select id, organization_id, email, name, role, status, created_at from users"),
    RawTable("conversation_events",
             "select id, organization_id, conversation_id, type, actor_user_id, message_id, "
             "data::text as data, occurred_at, recorded_at from conversation_events "
             "where type in ('CREATED', 'ACCEPTED', 'RELEASED', 'REASSIGNED', 'COMPLETED', 'REOPENED', "
             "'AGENT_DISCONNECTED')", mode="append"),
    RawTable("messages",
             "select id, organization_id, conversation_id, channel_id, direction, author_kind, "
             "author_user_id, coalesce(char_length(body), 0)::bigint as body_length_chars, content_type, "
             "status, is_deleted, sent_at, delivered_at, read_at, created_at from messages", mode="upsert"),
    RawTable("conversations",
             "select id, organization_id, channel_id, contact_id, status, assigned_user_id, unread_count, "
             "last_message_at, last_inbound_at, cycle_number, cycle_started_at, first_response_at, "
             "awaiting_reply, created_at, updated_at from conversations", mode="upsert"),
    RawTable("presence_events", "select id, organization_id, user_id, state, occurred_at "
             "from presence_events", mode="append"),
)
WATERMARKED = ("conversation_events", "messages", "conversations", "presence_events")


def conninfo(database_url: str) -> str:
    """A libpq conninfo string from a SQLAlchemy/libpq URL (``?host=/socket/dir`` understood)."""
    u = make_url(database_url)
    params: dict[str, Any] = {"dbname": u.database, "user": u.username, "password": u.password or None,
                              "host": u.host, "port": u.port}
    for k, v in u.query.items():
        params[k] = v if isinstance(v, str) else v[-1]
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v not in (None, "")})


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def postgres_extension_path() -> Path:
    import duckdb_extension_postgres

    base = Path(duckdb_extension_postgres.__file__).parent / "extensions"
    found = sorted(base.glob(f"v{duckdb.__version__}/postgres.duckdb_extension")) or sorted(
        base.glob("*/postgres.duckdb_extension"))
    if not found:
        raise RuntimeError(f"the DuckDB postgres extension is not shipped under {base}; "
                           f"install duckdb-extension-postgres=={duckdb.__version__}")
    return found[0]


def attach_postgres(con: duckdb.DuckDBPyConnection, database_url: str, alias: str = "pg") -> None:
    """``INSTALL '<shipped file>'; LOAD postgres; ATTACH … (TYPE postgres, READ_ONLY)``.

    ATTACH takes no bound parameters, so the conninfo (configuration, not user input) is quoted.
    """
    con.execute(f"INSTALL {_sql_literal(str(postgres_extension_path()))}")
    con.execute("LOAD postgres")
    con.execute(f"ATTACH {_sql_literal(conninfo(database_url))} AS {alias} (TYPE postgres, READ_ONLY)")


# Full extract: the tables are read by this many concurrent streams (one Postgres backend and one
# DuckDB connection each), biggest first. A table is never split across streams: its rows stay in id
# (≈ time) order, which the window and ASOF passes of the models rely on for speed (interleaved
# streams made them 3x slower).
EXTRACT_STREAMS = 2
EXTRACT_ORDER = ("messages", "conversation_events", "conversations")


def extract_full(con: duckdb.DuckDBPyConnection, database_url: str,
                 timings: dict[str, float] | None = None) -> dict[str, int]:
    """Create every ``raw_*`` table from scratch; returns rows per table (seconds per table in ``timings``)."""
    attach_postgres(con, database_url)
    counts: dict[str, int] = {}
    try:

        def run(t: RawTable) -> float:
            started = time.perf_counter()
            cur = con.cursor()
            try:
                cur.execute(f"create or replace table raw_{t.name} as "  # noqa: S608 (identifiers from code, values bound)
                            f"select * from postgres_query('pg', {_sql_literal(t.select)})")
            finally:
                cur.close()
            return time.perf_counter() - started

        tables = sorted(RAW_TABLES, key=lambda t: EXTRACT_ORDER.index(t.name) if t.name in EXTRACT_ORDER
                        else len(EXTRACT_ORDER))
        with ThreadPoolExecutor(max_workers=EXTRACT_STREAMS) as pool:
            for t, seconds in zip(tables, pool.map(run, tables), strict=True):
                if timings is not None:
                    timings[f"extract/{t.name}"] = seconds
        for t in RAW_TABLES:
            row = con.execute(f"select count(*) from raw_{t.name}").fetchone()  # noqa: S608 (identifiers from code, values bound)
            counts[t.name] = int(row[0]) if row else 0
    finally:
        con.execute("detach pg")
    con.execute("create or replace temp table _scope as select id as conversation_id from raw_conversations")
    return counts


def max_ids(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    out = {}
    for name in WATERMARKED:
        row = con.execute(f"select coalesce(max(id), 0) from raw_{name}").fetchone()  # noqa: S608 (identifiers from code, values bound)
        out[name] = int(row[0]) if row else 0
    return out


def _fetch(cur: psycopg.Cursor[Any], sql: str, params: Sequence[Any]) -> pa.Table | None:
    cur.execute(sql, params)
    rows = cur.fetchall()
    if not rows:
        return None
    names = [d.name for d in cur.description or ()]
    cols = list(zip(*rows, strict=True))
    return pa.table({n: pa.array(list(c)) for n, c in zip(names, cols, strict=True)})


def _where(select: str, clause: str) -> str:
    return f"select * from ({select}) s where {clause}"  # noqa: S608 (identifiers from code, values bound)


def extract_incremental(con: duckdb.DuckDBPyConnection, database_url: str,
                        watermarks: dict[str, int], timings: dict[str, float] | None = None) -> dict[str, int]:
    """Bring ``raw_*`` up to date from the watermarks; fills temp table ``_scope`` (touched conversations)."""
    counts: dict[str, int] = {}
    spec = {t.name: t for t in RAW_TABLES}
    timings = {} if timings is None else timings
    started = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal started
        timings[f"extract/{step}"] = time.perf_counter() - started
        started = time.perf_counter()

    with psycopg.connect(conninfo(database_url)) as pg, pg.cursor() as cur:
        lap("connect")
        cur.execute("set transaction isolation level repeatable read")
        for t in RAW_TABLES:
            if t.mode == "snapshot":
                data = _fetch(cur, t.select, ())
                con.execute(f"delete from raw_{t.name}")  # noqa: S608 (identifiers from code, values bound)
                if data is not None:
                    con.register("_delta", data)
                    con.execute(f"insert into raw_{t.name} by name select * from _delta")  # noqa: S608 (identifiers from code, values bound)
                    con.unregister("_delta")
                counts[t.name] = 0 if data is None else data.num_rows
        lap("reference tables")
        con.execute("create or replace temp table _scope (conversation_id bigint)")
        con.execute("create or replace temp table _touched_messages (id bigint)")

        # append-only tables: re-read an overlap below the watermark, insert what is new
        ev = spec["conversation_events"]
        # message events (SENT/DELIVERED/READ/FAILED…) are not stored, but say which messages changed
        cur.execute("select distinct conversation_id, message_id from conversation_events where id > %s",
                    [watermarks.get("conversation_events", 0)])
        touched = cur.fetchall()
        if touched:
            tbl = pa.table({"conversation_id": pa.array([r[0] for r in touched], pa.int64()),
                            "message_id": pa.array([r[1] for r in touched], pa.int64())})
            con.register("_t", tbl)
            con.execute("insert into _scope select distinct conversation_id from _t")
            con.execute("insert into _touched_messages select distinct message_id from _t "
                        "where message_id is not null")
            con.unregister("_t")
        for name in ("conversation_events", "presence_events"):
            t = spec[name]
            data = _fetch(cur, _where(t.select, "id > %s"), [watermarks.get(name, 0) - OVERLAP_IDS])
            n = 0
            con.execute(f"create or replace temp table _extracted_{name} (id bigint)")  # the rows new in this build
            if data is not None:
                con.register("_delta", data)
                con.execute(f"create or replace temp table _new as select * from _delta d "  # noqa: S608 (identifiers from code, values bound)
                            f"where d.id not in (select id from raw_{name} where id > ?)",
                            [watermarks.get(name, 0) - OVERLAP_IDS])
                con.unregister("_delta")
                row = con.execute("select count(*) from _new").fetchone()
                n = int(row[0]) if row else 0
                con.execute(f"insert into raw_{name} by name select * from _new")  # noqa: S608 (identifiers from code, values bound)
                con.execute(f"insert into _extracted_{name} select id from _new")  # noqa: S608 (identifiers from code, values bound)
                if name == "conversation_events":
                    con.execute("insert into _scope select distinct conversation_id from _new")
            counts[name] = n
            lap(name)
        _ = ev

        # upserted tables: new ids plus rows touched by new events; only rows that really changed
        # (not the overlap re-read unchanged) put their conversation in scope
        # (ids above the re-read range are fetched by it: only older ones are listed)
        lo_msg = watermarks.get("messages", 0) - OVERLAP_IDS
        touched_msg = [int(r[0]) for r in con.execute("select id from _touched_messages where id <= ?",
                                                      [lo_msg]).fetchall()]
        msgs = _fetch(cur, _where(spec["messages"].select, "id > %s or id = any(%s)"), [lo_msg, touched_msg])
        counts["messages"] = _upsert(con, "messages", msgs, "conversation_id")
        lap("messages")
        lo_conv = watermarks.get("conversations", 0) - OVERLAP_IDS
        scope_ids = [int(r[0]) for r in con.execute("select distinct conversation_id from _scope "
                                                    "where conversation_id <= ?", [lo_conv]).fetchall()]
        convs = _fetch(cur, _where(spec["conversations"].select, "id > %s or id = any(%s)"), [lo_conv, scope_ids])
        counts["conversations"] = _upsert(con, "conversations", convs, "id")
        lap("conversations")
    con.execute("create or replace temp table _scope as select distinct conversation_id from _scope "
                "where conversation_id is not null")
    return counts


def _upsert(con: duckdb.DuckDBPyConnection, name: str, data: pa.Table | None, conversation_col: str) -> int:
    """Replace the rows of ``data`` that are new or changed; their conversations join ``_scope``."""
    if data is None:
        return 0
    con.register("_delta", data)
    con.execute(f"create or replace temp table _changed as select * from _delta except "  # noqa: S608
                f"select * from raw_{name} where id in (select id from _delta)")
    con.unregister("_delta")
    con.execute(f"delete from raw_{name} where id in (select id from _changed)")  # noqa: S608
    con.execute(f"insert into raw_{name} by name select * from _changed")  # noqa: S608
    con.execute(f"insert into _scope select distinct {conversation_col} from _changed")  # noqa: S608
    row = con.execute("select count(*) from _changed").fetchone()
    return int(row[0]) if row else 0


def calendars_json(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The calendar inputs as plain data (used for the calendar fingerprint)."""
    orgs = con.execute("select id, timezone, business_hours from raw_organizations order by id").fetchall()
    chans = con.execute("select id, organization_id, business_hours from raw_channels order by id").fetchall()
    return {"orgs": [[i, tz, json.loads(bh or "{}")] for i, tz, bh in orgs],
            "channels": [[i, o, json.loads(bh) if bh else None] for i, o, bh in chans]}
