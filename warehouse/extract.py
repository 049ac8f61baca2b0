"""Extract the system of record from Postgres into ``raw_*`` tables of a DuckDB file.

Two paths, one column list per table (``RAW_TABLES``):

* full: DuckDB's postgres extension (``ATTACH … (TYPE postgres, READ_ONLY)``) runs each table's
  constant select list in Postgres through ``postgres_query`` and streams it with binary COPY;
* incremental, in two steps (reading Postgres needs no DuckDB connection):
  ``fetch_incremental`` (psycopg with bound parameters, no DuckDB) reads what changed since the
  watermarks — rows above each table's watermark, the *pending* ids below it (ids not seen yet
  because the transaction that took them had not committed, or never will), messages and
  conversations named by new conversation events — and ``apply_incremental`` upserts it.

Watermarks and pending ids (``IdWindow``): after each build, a table's watermark is the highest id
seen, and its pending ids are the ids at most ``OVERLAP_IDS`` below it that were not seen. A
transaction that took an id earlier but commits after a build is picked up by the next one; rows
already present are skipped or replaced, so nothing is lost and nothing doubled.

The set of conversations touched by an incremental extract is left in the temp table ``_scope``;
the runner recomputes exactly those conversations.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
from sqlalchemy.engine import make_url

from warehouse.lake import load_extensions, sql_literal

# ids below each watermark still watched for: a transaction that took an id earlier but committed
# after the last build is still picked up (rows already present are skipped / replaced).
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
             "data::text as data, occurred_at from conversation_events "
             "where type in ('CREATED', 'ACCEPTED', 'RELEASED', 'REASSIGNED', 'COMPLETED', 'REOPENED', "
             "'AGENT_DISCONNECTED')", mode="append"),
    RawTable("messages",
             "select id, organization_id, conversation_id, channel_id, direction, author_kind, "
             "author_user_id, coalesce(char_length(body), 0)::bigint as body_length_chars, "
             "status, is_deleted, sent_at from messages", mode="upsert"),
    RawTable("conversations",
             "select id, organization_id, channel_id, status, assigned_user_id, unread_count, "
             "last_message_at, cycle_number, cycle_started_at, created_at from conversations", mode="upsert"),
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


def attach_postgres(con: duckdb.DuckDBPyConnection, database_url: str, alias: str = "pg") -> None:
    """``LOAD postgres`` (the shipped file); ``ATTACH … (TYPE postgres, READ_ONLY)``.

    ATTACH takes no bound parameters, so the conninfo (configuration, not user input) is quoted.
    """
    load_extensions(con, "postgres")
    con.execute(f"ATTACH {sql_literal(conninfo(database_url))} AS {alias} (TYPE postgres, READ_ONLY)")


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

        row = con.execute("select current_database()").fetchone()
        database = str(row[0]) if row else "main"

        def run(t: RawTable) -> float:
            started = time.perf_counter()
            cur = con.cursor()
            try:
                cur.execute(f'use "{database}"')  # (a cursor starts in the default database)
                cur.execute(f"create or replace table raw_{t.name} as "  # noqa: S608 (identifiers from code, values bound)
                            f"select * from postgres_query('pg', {sql_literal(t.select)})")
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


@dataclass(frozen=True)
class IdWindow:
    """A table's watermark (highest id seen) and its pending ids (not seen, at most OVERLAP_IDS below)."""

    watermark: int
    pending: tuple[int, ...] = ()

    def advance(self, seen: Sequence[int]) -> IdWindow:
        """The window after the ids ``seen`` (above the watermark or pending) were fetched."""
        seen_set = set(seen)
        top = max(seen_set, default=self.watermark)
        top = max(top, self.watermark)
        floor = top - OVERLAP_IDS
        missing = {i for i in range(max(self.watermark, floor) + 1, top + 1) if i not in seen_set}
        missing.update(i for i in self.pending if i > floor and i not in seen_set)
        return IdWindow(top, tuple(sorted(missing)))

    def to_json(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "pending": list(self.pending)}

    @classmethod
    def from_state(cls, state: dict[str, Any], name: str) -> IdWindow:
        """From a build state; a state from before pending ids were kept watches the whole overlap."""
        windows = state.get("id_windows") or {}
        if name in windows:
            w = windows[name]
            return cls(int(w["watermark"]), tuple(int(i) for i in w["pending"]))
        mark = int((state.get("watermarks") or {}).get(name, 0))
        return cls(mark, tuple(range(max(mark - OVERLAP_IDS, 0) + 1, mark + 1)))


def id_windows_now(database_url: str) -> dict[str, IdWindow]:
    """Each watermarked table's window as Postgres shows it now (taken just before a full extract).

    The full extract's own snapshot is later, so it holds at least these rows; anything it also holds
    above the watermark is fetched again by the next incremental build and skipped there.
    """
    out = {}
    with psycopg.connect(conninfo(database_url)) as pg, pg.cursor() as cur:
        for name in WATERMARKED:
            cur.execute(f"select coalesce(max(id), 0) from {name}")  # noqa: S608 (identifiers from code)
            row = cur.fetchone()
            top = int(row[0]) if row else 0
            cur.execute(f"select id from {name} where id > %s", [top - OVERLAP_IDS])  # noqa: S608 (identifiers from code, values bound)
            out[name] = IdWindow(max(top - OVERLAP_IDS, 0)).advance([int(r[0]) for r in cur.fetchall()] + [top])
    return out


def warm_up() -> None:
    """Make pyarrow's one-time set-up for converting Python values happen now (it imports pandas)."""
    pa.array([0])


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


def _ids(table: pa.Table | None, column: str = "id") -> list[int]:
    return [] if table is None else [int(i) for i in table.column(column).to_pylist() if i is not None]


@dataclass(frozen=True)
class Fetched:
    """What changed in Postgres since the last build (read by ``fetch_incremental``, stored by ``apply_incremental``)."""

    snapshots: dict[str, pa.Table | None]  # small tables, reloaded every build
    touched: pa.Table | None  # (conversation_id, message_id) named by new conversation events of any type
    rows: dict[str, pa.Table | None]  # conversation_events (lifecycle), presence_events, messages, conversations
    windows: dict[str, IdWindow]  # the id windows after this fetch


def fetch_incremental(database_url: str, windows: dict[str, IdWindow],
                      timings: dict[str, float] | None = None) -> Fetched:
    """Read what changed since ``windows`` in one REPEATABLE READ snapshot (psycopg only, no DuckDB)."""
    timings = {} if timings is None else timings
    started = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal started
        timings[f"extract/{step}"] = time.perf_counter() - started
        started = time.perf_counter()

    spec = {t.name: t for t in RAW_TABLES}
    rows: dict[str, pa.Table | None] = {}
    new_windows: dict[str, IdWindow] = {}
    window = {name: windows.get(name, IdWindow(0)) for name in WATERMARKED}
    with psycopg.connect(conninfo(database_url)) as pg, pg.cursor() as cur:
        lap("connect")
        cur.execute("set transaction isolation level repeatable read")
        snapshots = {t.name: _fetch(cur, t.select, ()) for t in RAW_TABLES if t.mode == "snapshot"}
        lap("reference tables")

        # every new conversation event (message events such as DELIVERED or FAILED are not stored, but
        # say which conversations and messages changed)
        w = window["conversation_events"]
        touched = _fetch(cur, "select id, conversation_id, message_id from conversation_events "
                              "where id > %s or id = any(%s)", [w.watermark, list(w.pending)])
        new_windows["conversation_events"] = w.advance(_ids(touched))
        rows["conversation_events"] = _fetch(cur, _where(spec["conversation_events"].select,
                                                         "id > %s or id = any(%s)"), [w.watermark, list(w.pending)])
        lap("conversation_events")
        w = window["presence_events"]
        rows["presence_events"] = _fetch(cur, _where(spec["presence_events"].select, "id > %s or id = any(%s)"),
                                         [w.watermark, list(w.pending)])
        new_windows["presence_events"] = w.advance(_ids(rows["presence_events"]))
        lap("presence_events")

        # messages: new ids, pending ids and the ones named by new events
        w = window["messages"]
        named = sorted({i for i in _ids(touched, "message_id") if i <= w.watermark} | set(w.pending))
        rows["messages"] = _fetch(cur, _where(spec["messages"].select, "id > %s or id = any(%s)"),
                                  [w.watermark, named])
        new_windows["messages"] = w.advance(_ids(rows["messages"]))
        lap("messages")

        # conversations: new ids, pending ids and every conversation named by a new event or message
        # (apply_incremental keeps only the rows that really changed)
        w = window["conversations"]
        named = sorted({i for i in _ids(touched, "conversation_id") + _ids(rows["messages"], "conversation_id")
                        if i <= w.watermark} | set(w.pending))
        rows["conversations"] = _fetch(cur, _where(spec["conversations"].select, "id > %s or id = any(%s)"),
                                       [w.watermark, named])
        new_windows["conversations"] = w.advance(_ids(rows["conversations"]))
        lap("conversations")
    return Fetched(snapshots, touched, rows, new_windows)


def apply_incremental(con: duckdb.DuckDBPyConnection, fetched: Fetched) -> dict[str, int]:
    """Store what ``fetch_incremental`` read; fills temp table ``_scope`` (conversations that changed)
    and ``_extracted_<table>`` (ids new in this build) for the append-only tables."""
    counts: dict[str, int] = {}
    for name, data in fetched.snapshots.items():
        con.execute(f"delete from raw_{name}")  # noqa: S608 (identifiers from code, values bound)
        if data is not None:
            con.register("_delta", data)
            con.execute(f"insert into raw_{name} by name select * from _delta")  # noqa: S608 (identifiers from code, values bound)
            con.unregister("_delta")
        counts[name] = 0 if data is None else data.num_rows
    con.execute("create or replace temp table _scope (conversation_id bigint)")
    if fetched.touched is not None:
        con.register("_t", fetched.touched)
        con.execute("insert into _scope select distinct conversation_id from _t")
        con.unregister("_t")
    for name in ("conversation_events", "presence_events"):
        data = fetched.rows[name]
        con.execute(f"create or replace temp table _extracted_{name} (id bigint)")  # the rows new in this build
        counts[name] = 0
        if data is None:
            continue
        con.register("_delta", data)
        con.execute(f"create or replace temp table _new as select * from _delta d "  # noqa: S608 (identifiers from code, values bound)
                    f"where d.id not in (select id from raw_{name} where id >= ?)", [min(_ids(data))])
        con.unregister("_delta")
        row = con.execute("select count(*) from _new").fetchone()
        counts[name] = int(row[0]) if row else 0
        con.execute(f"insert into raw_{name} by name select * from _new")  # noqa: S608 (identifiers from code, values bound)
        con.execute(f"insert into _extracted_{name} select id from _new")  # noqa: S608 (identifiers from code, values bound)
        if name == "conversation_events":
            con.execute("insert into _scope select distinct conversation_id from _new")
    # upserted tables: only rows that really changed put their conversation in scope
    counts["messages"] = _upsert(con, "messages", fetched.rows["messages"], "conversation_id")
    counts["conversations"] = _upsert(con, "conversations", fetched.rows["conversations"], "id")
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
