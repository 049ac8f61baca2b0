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

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
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

    ``key_filter('int_messages', 'organization_id', 'author_user_id', 'sent_local_at::date')`` keeps the
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
                bound = f"{bound}::timestamp" if col.group(2) else bound
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


def _data_range(con: duckdb.DuckDBPyConnection, now: datetime) -> tuple[datetime, datetime]:
    row = con.execute("""
        select least(
                   (select min(sent_at) from raw_messages),
                   (select min(occurred_at) from raw_conversation_events),
                   (select min(occurred_at) from raw_presence_events)),
               greatest(
                   (select max(sent_at) from raw_messages),
                   (select max(occurred_at) from raw_conversation_events),
                   (select max(occurred_at) from raw_presence_events))
    """).fetchone()
    lo = row[0] if row and row[0] is not None else now
    hi = row[1] if row and row[1] is not None else now
    return min(lo, now), max(hi, now) + timedelta(days=1)


def build(database_url: str, warehouse_path: Path, *, full: bool = False,
          now: datetime | None = None) -> BuildReport:
    """Build (incrementally unless ``full``) and atomically publish the warehouse file."""
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
            t = time.perf_counter()
            if not full and warehouse_path.exists():
                shutil.copyfile(warehouse_path, side)
            timings["copy"] = time.perf_counter() - t
            con = duckdb.connect(str(side))
            try:
                con.execute("set TimeZone = 'UTC'")
                state = _read_state(con)
                if not full and (not state or state.get("models_fingerprint") != models_fp):
                    if state:
                        log.info("warehouse models changed since the last build: rebuilding in full")
                    con.close()
                    side.unlink(missing_ok=True)
                    con = duckdb.connect(str(side))
                    con.execute("set TimeZone = 'UTC'")
                    state = {}
                    full = True
                report = _run(con, database_url, models, by_name, state, full=full, now=now,
                              models_fp=models_fp, timings=timings, keys=keys)
                t = time.perf_counter()
                # (the checkpoint's fsync also writes out the copied file: ~0.35 s at 10 M messages; writing
                # it out in a background thread only moved that wait into the first writes of the build)
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


def _run(con: duckdb.DuckDBPyConnection, database_url: str, models: list[Model], by_name: dict[str, Model],
         state: dict[str, Any], *, full: bool, now: datetime, models_fp: str,
         timings: dict[str, float], keys: dict[str, int]) -> tuple[dict[str, int], list[str], int]:
    t = time.perf_counter()
    if full:
        rows = extract.extract_full(con, database_url, timings)
    else:
        rows = extract.extract_incremental(con, database_url, state.get("watermarks", {}), timings)
    timings["extract"] = time.perf_counter() - t

    t = time.perf_counter()
    con.execute("create or replace table build_info as select ?::timestamptz as as_of", [now])
    calendars = extract.calendars_json(con)
    cal_fp = fingerprint(calendars)
    ref_fp = reference_fingerprint(con)
    start, end = _data_range(con, now)
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
        "watermarks": extract.max_ids(con),
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
    con.execute(f"create or replace temp table _delta_{name} as "  # noqa: S608 (identifiers from code, values bound)
                f"(select {cols} from _new_{name} except all select {cols} from _old_{name}) union all "
                f"(select {cols} from _old_{name} except all select {cols} from _new_{name})")


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
