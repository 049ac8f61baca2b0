"""The warehouse runner: extract, calendars, SQL models in dependency order, atomic publish.

``build(database_url, warehouse_path, full=False)``:

1. takes an exclusive lock next to the warehouse file (one build at a time);
2. copies the published file to a private side file (or starts an empty one for a full build) —
   readers keep using the published file and never see or block the build;
3. extracts from Postgres (full, or incremental from the watermarks kept in ``_warehouse_meta``);
4. regenerates the calendar tables from the current calendars (a changed calendar recomputes every
   conversation, so business-hours columns always follow the current calendar);
5. runs the models of ``warehouse/models`` (staging views, then intermediate and mart tables) —
   conversation-scoped models only for the conversations that changed, key-scoped models (the daily
   marts) only for the (organization, agent/channel, day) keys of the rows that changed in their
   inputs (``key_filter`` / ``key_since``, see :class:`KeySource`), the rest in full;
6. checkpoints, closes and ``os.replace``-s the side file over the published one (atomic).

Models are SQL ``select``s with ``{{ ref('model') }}``, ``{{ source('table') }}`` and
``{{ var('name') }}`` placeholders; the ``.yml`` beside each one gives its grain, columns, tests and
``scope: conversation`` for models whose rows belong to one conversation, or ``scope: key`` with its
``key`` columns for models recomputed per (organization, entity, day) (both recomputed incrementally).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import yaml

from warehouse import extract, metrics
from warehouse.calendar import build_calendar_tables, fingerprint

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).with_name("models")
LAYERS = ("staging", "intermediate", "marts")
FORMAT_VERSION = "1"
VARS: dict[str, int] = {"presence_gap_cap_seconds": metrics.PRESENCE_GAP_CAP_SECONDS}

_REF = re.compile(r"\{\{\s*ref\(\s*'(\w+)'\s*\)\s*\}\}")
_SOURCE = re.compile(r"\{\{\s*source\(\s*'(\w+)'\s*\)\s*\}\}")
_VAR = re.compile(r"\{\{\s*var\(\s*'(\w+)'\s*\)\s*\}\}")
# The rows of the conversations in scope. The lower bound lets scans skip row groups by zone map: the
# conversation-scoped tables are stored in conversation_id order (ids grow with time, and recent
# conversations are what an incremental build recomputes).
IN_SCOPE = ("conversation_id >= getvariable('scope_min_conversation_id') "
            "and conversation_id in (select conversation_id from _scope)")
# a day expression that is a plain date column, or a timestamp column cast to date
_DAY_COLUMN = re.compile(r"(\w+)(::date)?")
# {{ key_filter('source', 'org expr', 'entity expr', 'date expr') }} / {{ key_since(...) }}: see Model.key_sources
_KEYS = re.compile(r"\{\{\s*(key_filter|key_since)\(\s*'(\w+)'\s*,\s*'([^']+)'\s*,\s*'([^']+)'\s*,"
                   r"\s*'([^']+)'\s*\)\s*\}\}")


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster than the pure-Python one


class BuildError(RuntimeError):
    """A build could not run (another build holds the lock, a model failed, bad input)."""


@dataclass(frozen=True)
class BuildReport:
    path: Path
    full: bool
    rows_extracted: dict[str, int]
    models_built: list[str]
    seconds: float
    conversations_recomputed: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # key-scoped models recomputed incrementally: model -> number of keys (days x agent/channel, or
    # agents for key_since models) recomputed; empty in a full build or when everything was recomputed
    keys_recomputed: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    name: str
    layer: str
    sql: str
    config: dict[str, Any]

    @property
    def refs(self) -> list[str]:
        return _REF.findall(self.sql) + [k[1] for k in _KEYS.findall(self.sql)]

    @property
    def materialized(self) -> str:
        return str(self.config.get("materialized", "view" if self.layer == "staging" else "table"))

    @property
    def conversation_scoped(self) -> bool:
        return self.config.get("scope") == "conversation"

    @property
    def key_scoped(self) -> bool:
        return self.config.get("scope") == "key"

    @property
    def key(self) -> list[str]:
        """The delete key of a key-scoped model: (organization column, entity column, date column)."""
        return [str(k) for k in self.config.get("key", [])]

    @property
    def key_sources(self) -> list[KeySource]:
        return [KeySource(kind, src, org, ent, day) for kind, src, org, ent, day in _KEYS.findall(self.sql)]


@dataclass(frozen=True)
class KeySource:
    """One ``{{ key_filter(...) }}`` / ``{{ key_since(...) }}`` of a key-scoped model.

    ``key_filter('int_messages', 'organization_id', 'author_user_id', 'sent_local_date')`` keeps the
    rows of a CTE whose (organization, entity, day) is one of the model's keys in scope; the keys in
    scope are the same three expressions evaluated over the rows of ``int_messages`` that changed in
    this build (old and new versions). In a full build it is ``true``.

    ``key_since(source, org, entity, day)`` is a relation ``(organization_id, entity_id, since_date)``:
    per entity, the earliest day of its changed source rows (a full build: every entity of the source
    since ``-infinity``). For running totals (concurrency, presence spans): the model recomputes every
    day of the entity from ``since_date`` on, starting from the total of the rows before it.
    """

    kind: str  # key_filter | key_since
    source: str
    org: str
    entity: str
    day: str


def load_models(models_dir: Path = MODELS_DIR) -> list[Model]:
    """All models in dependency order (each after the models it refs)."""
    found: dict[str, Model] = {}
    for layer in LAYERS:
        for sql_path in sorted((models_dir / layer).glob("*.sql")):
            yml = sql_path.with_suffix(".yml")
            config = yaml.load(yml.read_text(), Loader=_YAML_LOADER) if yml.exists() else {}
            found[sql_path.stem] = Model(sql_path.stem, layer, sql_path.read_text(), config or {})
    ordered: list[Model] = []
    state: dict[str, int] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise BuildError(f"models form a cycle: {' → '.join((*trail, name))}")
        if name not in found:
            raise BuildError(f"model {trail[-1] if trail else '?'} refs unknown model {name!r}")
        state[name] = 1
        for dep in found[name].refs:
            visit(dep, (*trail, name))
        state[name] = 2
        ordered.append(found[name])

    for name in found:
        visit(name, ())
    return ordered


def models_fingerprint(models: list[Model]) -> str:
    h = hashlib.sha256(FORMAT_VERSION.encode())
    for m in models:
        h.update(m.name.encode() + m.sql.encode() + json.dumps(m.config, sort_keys=True, default=str).encode())
    for t in extract.RAW_TABLES:
        h.update(t.select.encode())
    h.update(json.dumps(VARS, sort_keys=True).encode())
    return h.hexdigest()


def render(model: Model, models: dict[str, Model], *, scoped: bool, keyed: bool = False) -> str:
    """Resolve placeholders.

    ``scoped``: a conversation-scoped run, whose conversation-scoped refs read only ``_scope``;
    ``keyed``: a key-scoped run, whose ``key_filter``/``key_since`` read the keys in scope
    (``_keys_<model>`` / ``_since_<model>``, filled by the runner from the changed source rows).
    """

    def ref(m: re.Match[str]) -> str:
        name = m.group(1)
        if scoped and models[name].conversation_scoped:
            return f"(select * from {name} where {IN_SCOPE})"  # noqa: S608 (identifiers from code, values bound)
        return name

    def var(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in VARS:
            raise BuildError(f"model {model.name} uses unknown var {name!r}")
        return str(int(VARS[name]))

    def keys(m: re.Match[str]) -> str:
        kind, source, org, ent, day = m.groups()
        if kind == "key_filter":
            if not keyed:
                return "true"
            in_keys = f"(({org}), ({ent}), ({day})) in (select organization_id, entity_id, metric_date from _keys_{model.name})"  # noqa: S608 (identifiers from code, values bound)
            # a plain column bound on the earliest key day lets the scan skip old row groups (zone maps)
            col = _DAY_COLUMN.fullmatch(day.strip())
            if col:
                bound = f"getvariable('key_min_{model.name}')"
                # typed, so that the comparison is pushed into the scan (an untyped variable is not)
                bound = f"{bound}::timestamp" if col.group(2) else f"{bound}::date"
                return f"({col.group(1)} >= {bound} and {in_keys})"
            return in_keys
        if keyed:
            return f"_since_{model.name}"
        return (f"(select distinct ({org}) as organization_id, ({ent}) as entity_id, "  # noqa: S608 (identifiers from code, values bound)
                f"'-infinity'::date as since_date from {source})")

    sql = _KEYS.sub(keys, model.sql)
    sql = _REF.sub(ref, sql)
    sql = _SOURCE.sub(lambda m: m.group(1), sql)
    return _VAR.sub(var, sql)


@contextmanager
def _build_lock(warehouse_path: Path) -> Iterator[None]:
    lock_path = warehouse_path.with_name(warehouse_path.name + ".lock")
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildError(f"another warehouse build is running (lock {lock_path})") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    try:
        row = con.execute("select value from _warehouse_meta where key = 'state'").fetchone()
    except duckdb.CatalogException:
        return {}
    return json.loads(row[0]) if row else {}


def _write_state(con: duckdb.DuckDBPyConnection, state: dict[str, Any]) -> None:
    con.execute("create table if not exists _warehouse_meta (key varchar primary key, value varchar)")
    con.execute("insert or replace into _warehouse_meta values ('state', ?)", [json.dumps(state)])


def _data_range(con: duckdb.DuckDBPyConnection, above: dict[str, int] | None,
                previous: list[str] | None) -> tuple[datetime, datetime] | None:
    """The earliest and latest instant in the raw tables (None when empty).

    Incrementally only the rows with ids ``above`` the previous watermarks (less the overlap still
    watched for) are read — the raw tables only grow between full builds — and ``previous`` is widened.
    """
    ids = above or {}
    floor = {name: ids.get(name, 0) - extract.OVERLAP_IDS if above is not None else -1
             for name in ("messages", "conversation_events", "presence_events")}
    row = con.execute("""
        select least(
                   (select min(sent_at) from raw_messages where id > $messages),
                   (select min(occurred_at) from raw_conversation_events where id > $conversation_events),
                   (select min(occurred_at) from raw_presence_events where id > $presence_events)),
               greatest(
                   (select max(sent_at) from raw_messages where id > $messages),
                   (select max(occurred_at) from raw_conversation_events where id > $conversation_events),
                   (select max(occurred_at) from raw_presence_events where id > $presence_events))
    """, floor).fetchone()
    found = [(row[0], row[1])] if row and row[0] is not None else []
    if previous:
        found.append((datetime.fromisoformat(previous[0]), datetime.fromisoformat(previous[1])))
    if not found:
        return None
    return min(lo for lo, _ in found), max(hi for _, hi in found)


def build(database_url: str, warehouse_path: Path, *, full: bool = False,
          now: datetime | None = None) -> BuildReport:
    """Build (incrementally unless ``full``) and atomically publish the warehouse file.

    Every failure is a :class:`BuildError` with a readable reason (Postgres unreachable, disk full,
    a model failing…); the published file is then left as it was.
    """
    try:
        return _build(database_url, warehouse_path, full=full, now=now)
    except BuildError:
        raise
    except psycopg.Error as exc:
        raise BuildError(f"cannot read PostgreSQL: {' '.join(str(exc).split())}") from exc
    except duckdb.Error as exc:
        raise BuildError(f"DuckDB failed: {' '.join(str(exc).split())}") from exc
    except OSError as exc:
        raise BuildError(f"cannot write the warehouse next to {warehouse_path}: {exc}") from exc


def _build(database_url: str, warehouse_path: Path, *, full: bool, now: datetime | None) -> BuildReport:
    t0 = time.perf_counter()
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise BuildError("build(now=...) must be timezone-aware")
    warehouse_path = Path(warehouse_path).expanduser().resolve()
    warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    models = load_models()
    by_name = {m.name: m for m in models}
    models_fp = models_fingerprint(models)
    timings: dict[str, float] = {}
    keys: dict[str, int] = {}

    with _build_lock(warehouse_path):
        side = warehouse_path.with_name(f".{warehouse_path.name}.building-{os.getpid()}")
        for stale in warehouse_path.parent.glob(f".{warehouse_path.name}.building-*"):
            stale.unlink(missing_ok=True)
        side.with_name(side.name + ".wal").unlink(missing_ok=True)
        try:
            prior = {} if full else _published_state(warehouse_path)
            if not full and prior.get("models_fingerprint") != models_fp:
                if prior:
                    log.info("warehouse models changed since the last build: rebuilding in full")
                full = True
            fetched: extract.Fetched | None = None
            windows: dict[str, extract.IdWindow] | None = None
            if full:
                windows = extract.id_windows_now(database_url)
            else:
                # copy the published file (and write it to disk) while Postgres is read: the two overlap
                fetched = _fetch_while_copying(database_url, prior, warehouse_path, side, timings)
            con = duckdb.connect(str(side))
            try:
                con.execute("set TimeZone = 'UTC'")
                if fetched is not None and _read_state(con).get("built_at") != prior.get("built_at"):
                    raise BuildError("the published warehouse changed during the build")  # (the lock forbids it)
                report = _run(con, database_url, models, by_name, full=full, fetched=fetched, windows=windows,
                              prior=prior, now=now, models_fp=models_fp, timings=timings, keys=keys)
                t = time.perf_counter()
                con.execute("checkpoint")
            finally:
                con.close()
            timings["checkpoint"] = time.perf_counter() - t
            os.replace(side, warehouse_path)
        except BaseException:
            side.unlink(missing_ok=True)
            side.with_name(side.name + ".wal").unlink(missing_ok=True)
            raise
    rows, built, recomputed = report
    return BuildReport(warehouse_path, full, rows, built, time.perf_counter() - t0, recomputed, timings, keys)


def _published_state(warehouse_path: Path) -> dict[str, Any]:
    """The published file's build state, or {} when there is none or it cannot be read (→ a full build)."""
    if not warehouse_path.exists():
        return {}
    try:
        con = duckdb.connect(str(warehouse_path), read_only=True)
    except duckdb.Error as exc:
        log.warning("the published warehouse %s cannot be opened (%s): rebuilding it in full", warehouse_path, exc)
        return {}
    try:
        state = _read_state(con)
    finally:
        con.close()
    return state if state.get("format") == FORMAT_VERSION else {}


COPY_CHUNK_BYTES = 32 << 20
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Any:
    """Linux ``sync_file_range(2)`` (start writing a range out without waiting), or None elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _copy_to_disk(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` and wait until it is on disk (else the final checkpoint's fsync
    would write the whole copy out: ~0.35 s at 10 M messages).

    On Linux each 32 MB chunk's write-out starts as soon as it is copied, so copying and writing
    overlap (measured ~0.43 s instead of ~0.55 s for 0.75 GB); elsewhere, or where the file system
    cannot copy_file_range, a plain copy and fsync.
    """
    start_write_out = _sync_file_range() if hasattr(os, "copy_file_range") else None
    if start_write_out is not None:
        try:
            _copy_in_chunks(source, target, start_write_out)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                raise
            log.info("copy_file_range unavailable here (%s): plain copy", exc)
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_in_chunks(source: Path, target: Path, start_write_out: Any) -> None:
    size = source.stat().st_size
    with open(source, "rb") as src, open(target, "wb") as dst:
        offset = 0
        while offset < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), min(COPY_CHUNK_BYTES, size - offset), offset, offset)
            if n == 0:
                break
            start_write_out(dst.fileno(), offset, n, _SYNC_FILE_RANGE_WRITE)  # a failure only loses the overlap
            offset += n
        if offset != size:
            raise OSError(f"copied {offset} of {size} bytes of {source}")
        os.fsync(dst.fileno())


def _fetch_while_copying(database_url: str, prior: dict[str, Any], published: Path, side: Path,
                         timings: dict[str, float]) -> extract.Fetched:
    """Fetch the changes from Postgres while a thread copies the published file to the side file."""
    copy_error: list[BaseException] = []

    def copy() -> None:
        started = time.perf_counter()
        try:
            _copy_to_disk(published, side)
        except BaseException as exc:  # re-raised in the calling thread
            copy_error.append(exc)
        timings["copy"] = time.perf_counter() - started

    t = time.perf_counter()
    copier = threading.Thread(target=copy, name="warehouse-copy", daemon=True)
    copier.start()
    try:
        # pyarrow's first conversion of Python values imports pandas (~0.2 s once per process): do it
        # now, while the copy is mostly waiting for the disk
        extract.warm_up()
        windows = {name: extract.IdWindow.from_state(prior, name) for name in extract.WATERMARKED}
        fetched = extract.fetch_incremental(database_url, windows, timings)
    finally:
        copier.join()
    if copy_error:
        raise BuildError(f"could not copy the published warehouse {published}: {copy_error[0]}") from copy_error[0]
    timings["fetch"] = sum(v for k, v in timings.items() if k.startswith("extract/"))
    timings["copy+fetch"] = time.perf_counter() - t
    return fetched


def _run(con: duckdb.DuckDBPyConnection, database_url: str, models: list[Model], by_name: dict[str, Model], *,
         full: bool, fetched: extract.Fetched | None, windows: dict[str, extract.IdWindow] | None,
         prior: dict[str, Any], now: datetime, models_fp: str, timings: dict[str, float],
         keys: dict[str, int]) -> tuple[dict[str, int], list[str], int]:
    t = time.perf_counter()
    if fetched is None:
        rows = extract.extract_full(con, database_url, timings)
        state: dict[str, Any] = {}
    else:
        rows = extract.apply_incremental(con, fetched)
        windows = fetched.windows
        state = prior
    timings["extract" if fetched is None else "apply"] = time.perf_counter() - t

    t = time.perf_counter()
    con.execute("create or replace table build_info as select ?::timestamptz as as_of", [now])
    calendars = extract.calendars_json(con)
    cal_fp = fingerprint(calendars)
    ref_fp = reference_fingerprint(con)
    prior_range = state.get("data_range") if fetched is not None else None
    data_range = _data_range(con, state.get("watermarks") if prior_range else None, prior_range)
    start = min(data_range[0], now) if data_range else now
    end = (max(data_range[1], now) if data_range else now) + timedelta(days=1)
    covered = state.get("calendar_range") if not full and state.get("calendar_fingerprint") == cal_fp else None
    if covered and datetime.fromisoformat(covered[0]) <= start and end <= datetime.fromisoformat(covered[1]):
        calendar_range = covered  # the calendar tables already cover the data: keep them
    else:
        # a week ahead, so that the following incremental builds need not regenerate them
        build_calendar_tables(con, calendars, start, end + timedelta(days=7))
        calendar_range = [start.isoformat(), (end + timedelta(days=7)).isoformat()]
    scoped = not full
    everything = full  # every conversation (and so every key) is recomputed
    if scoped and (state.get("calendar_fingerprint") != cal_fp or state.get("reference_fingerprint") != ref_fp):
        log.info("calendars, SLA targets, channels or users changed: recomputing every conversation")
        con.execute("create or replace temp table _scope as select id as conversation_id from raw_conversations")
        everything = True
    elif scoped:
        lookback = now - timedelta(days=metrics.OPEN_CONVERSATION_LOOKBACK_DAYS)
        con.execute("insert into _scope select id from raw_conversations where status <> 'COMPLETED' "
                    "and coalesce(cycle_started_at, last_message_at, created_at) >= ?", [lookback])
        con.execute("create or replace temp table _scope as select distinct conversation_id from _scope")
    row = con.execute("select count(*) from _scope").fetchone()
    recomputed = int(row[0]) if row else 0
    con.execute("set variable scope_min_conversation_id = (select min(conversation_id) from _scope)")
    timings["calendar"] = time.perf_counter() - t

    keyed = scoped and not everything
    delta_needed = {ks.source for m in models if m.key_scoped for ks in m.key_sources} if keyed else set()
    built: list[str] = []
    for m in models:
        t = time.perf_counter()
        try:
            n_keys = _materialize(con, m, by_name, scoped=scoped, keyed=keyed, delta=m.name in delta_needed,
                                  timings=timings)
            if n_keys is not None:
                keys[m.name] = n_keys
        except duckdb.Error as exc:
            raise BuildError(f"model {m.layer}/{m.name} failed: {exc}") from exc
        timings[m.name] = time.perf_counter() - t
        built.append(m.name)

    _write_state(con, {
        "format": FORMAT_VERSION,
        "models_fingerprint": models_fp,
        "calendar_fingerprint": cal_fp,
        "reference_fingerprint": ref_fp,
        "calendar_range": calendar_range,
        "data_range": [d.isoformat() for d in data_range] if data_range else None,
        "watermarks": {name: w.watermark for name, w in (windows or {}).items()},
        "id_windows": {name: w.to_json() for name, w in (windows or {}).items()},
        "built_at": now.isoformat(),
        "full": full,
    })
    return rows, built, recomputed


def reference_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """Hash of the small reference tables (organizations with SLA targets, channels, users).

    Names, emails and SLA targets are copied into conversation rows and daily marts: when any of them
    changes, an incremental build recomputes everything (rare; the tables are small).
    """
    h = hashlib.sha256()
    for name in ("organizations", "channels", "users"):
        for r in con.execute(f"select * from raw_{name} order by id").fetchall():  # noqa: S608 (identifiers from code, values bound)
            h.update(repr(r).encode())
        h.update(b"|")
    return h.hexdigest()


# Changed rows of sources that are views over append-only raw tables (not maintained by the runner).
# Presence: the new events, the event before each agent's first new one (its span now ends at the new
# one) and each agent's latest event (its span runs to the build's as-of time).
RAW_DELTAS: dict[str, str] = {
    "stg_presence_events": """
        with new as (
            select * from stg_presence_events
            where presence_event_id in (select id from _extracted_presence_events)
        ),
        first_new as (select user_id, min(occurred_at) as first_at from new group by user_id),
        previous as (
            select p.* from stg_presence_events as p
            inner join first_new as f on f.user_id = p.user_id and p.occurred_at <= f.first_at
            where p.presence_event_id not in (select id from _extracted_presence_events)
            qualify row_number() over (partition by p.user_id order by p.occurred_at desc, p.presence_event_id desc) = 1
        ),
        latest as (
            select * from stg_presence_events
            qualify row_number() over (partition by user_id order by occurred_at desc, presence_event_id desc) = 1
        )
        select * from new union all select * from previous union all select * from latest
    """,
}


# Columns that change on every build without changing any figure a keyed model aggregates (the build
# time stamped on each recomputed row): left out when looking for changed rows.
DELTA_IGNORED_COLUMNS = ("as_of",)


def _make_delta(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """``_delta_<name>``: the rows that changed in this build, old and new versions."""
    cols = ", ".join(f'"{r[0]}"' for r in con.execute(f"describe _new_{name}").fetchall()  # noqa: S608 (identifiers from code, values bound)
                     if r[0] not in DELTA_IGNORED_COLUMNS)
    # set semantics (EXCEPT, not EXCEPT ALL: ~7x faster) are exact here: every model's rows are unique
    con.execute(f"create or replace temp table _delta_{name} as "  # noqa: S608 (identifiers from code, values bound)
                f"(select {cols} from _new_{name} except select {cols} from _old_{name}) union all "
                f"(select {cols} from _old_{name} except select {cols} from _new_{name})")


def _fill_keys(con: duckdb.DuckDBPyConnection, m: Model) -> str:
    """Create ``_keys_<m>`` / ``_since_<m>`` from the changed source rows; return the delete condition."""
    sources = m.key_sources
    kinds = {ks.kind for ks in sources}
    if len(kinds) != 1 or len(m.key) != 3:
        raise BuildError(f"model {m.name}: scope: key needs a 3-column key and either key_filter or key_since "
                         "placeholders (not both)")
    selects = " union all ".join(
        f"select ({ks.org})::bigint, ({ks.entity})::bigint, ({ks.day})::date from _delta_{ks.source}"  # noqa: S608 (identifiers from code, values bound)
        for ks in sources)
    org, ent, day = m.key
    if kinds == {"key_filter"}:
        con.execute(f"create or replace temp table _keys_{m.name} as select distinct * from ({selects}) "  # noqa: S608 (identifiers from code, values bound)
                    "k(organization_id, entity_id, metric_date) where metric_date is not null")
        con.execute(f"set variable key_min_{m.name} = (select min(metric_date) from _keys_{m.name})")  # noqa: S608 (identifiers from code, values bound)
        return (f"({org}, {ent}, {day}) in "  # noqa: S608 (identifiers from code, values bound)
                f"(select organization_id, entity_id, metric_date from _keys_{m.name})")
    con.execute(f"create or replace temp table _since_{m.name} as select organization_id, entity_id, "  # noqa: S608 (identifiers from code, values bound)
                f"min(since_date) as since_date from ({selects}) k(organization_id, entity_id, since_date) "
                "where since_date is not null group by all")
    return (f"exists (select 1 from _since_{m.name} s where s.organization_id = {m.name}.{org} "  # noqa: S608 (identifiers from code, values bound)
            f"and s.entity_id = {m.name}.{ent} and {m.name}.{day} >= s.since_date)")


def _materialize(con: duckdb.DuckDBPyConnection, m: Model, by_name: dict[str, Model], *, scoped: bool,
                 keyed: bool = False, delta: bool = False, timings: dict[str, float] | None = None) -> int | None:
    """Create or update one model's table; returns the number of keys recomputed by a keyed run."""
    n_keys: int | None = None
    if m.materialized == "view":
        con.execute(f"create or replace view {m.name} as {render(m, by_name, scoped=False)}")
        if delta:
            if m.name not in RAW_DELTAS:
                raise BuildError(f"view {m.name} is used by key_filter/key_since but has no RAW_DELTAS entry")
            con.execute(f"create or replace temp table _delta_{m.name} as {RAW_DELTAS[m.name]}")
        return None
    where: str | None = None
    if scoped and m.conversation_scoped:
        sql = render(m, by_name, scoped=True)
        where = IN_SCOPE
    elif keyed and m.key_scoped:
        sql = render(m, by_name, scoped=False, keyed=True)
        where = _fill_keys(con, m)
        kind = "keys" if m.key_sources[0].kind == "key_filter" else "since"
        row = con.execute(f"select count(*) from _{kind}_{m.name}").fetchone()  # noqa: S608 (identifiers from code, values bound)
        n_keys = int(row[0]) if row else 0
    elif delta:
        sql = render(m, by_name, scoped=False)
        where = "true"
    if where is None:
        con.execute(f"create or replace table {m.name} as {render(m, by_name, scoped=False)}")  # noqa: S608 (identifiers from code, values bound)
        return None
    steps = [
        ("old", f"create or replace temp table _old_{m.name} as select * from {m.name} where {where}" if delta else ""),  # noqa: S608 (identifiers from code, values bound)
        ("new", f"create or replace temp table _new_{m.name} as select * from ({sql})"),  # noqa: S608 (identifiers from code, values bound)
        ("delete", f"delete from {m.name} where {where}"),  # noqa: S608 (identifiers from code, values bound)
        ("insert", f"insert into {m.name} by name select * from _new_{m.name}"),  # noqa: S608 (identifiers from code, values bound)
    ]
    for step, statement in steps:
        if statement:
            started = time.perf_counter()
            con.execute(statement)
            if timings is not None:
                timings[f"{m.name}/{step}"] = time.perf_counter() - started
    if delta:
        _make_delta(con, m.name)
    return n_keys


def warehouse_state(warehouse_path: Path) -> dict[str, Any]:
    """The published warehouse's build state (watermarks, built_at…), read-only; {} if none."""
    if not Path(warehouse_path).exists():
        return {}
    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        return _read_state(con)
    finally:
        con.close()
