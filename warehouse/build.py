"""The warehouse build: extract, calendars, SQL models in dependency order, one lake commit.

``build(database_url, warehouse_path, full=False)``:

1. takes the build lock (:mod:`warehouse.publish`; readers never wait for it) and attaches the lake;
2. extracts from Postgres (:mod:`warehouse.extract`: full, or incremental from the watermarks of the
   build state, :mod:`warehouse.state`) into the builder's private work file;
3. regenerates the calendar tables from the current calendars (:mod:`warehouse.calendar`; a changed
   calendar recomputes every conversation, so business-hours columns always follow it);
4. runs the models (:mod:`warehouse.dag`, rendered by :mod:`warehouse.render`), incrementally only
   for the conversations and keys in scope (:mod:`warehouse.incremental`);
5. writes the build state, commits the work file and publishes what changed in one lake commit.

The build runs at a lower CPU priority than the rest of the machine (``nice``): it is a batch job,
and the analytics page's reads and the inbox's processes should not wait behind it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import psycopg

from warehouse import extract, incremental, publish
from warehouse.calendar import build_calendar_tables, fingerprint
from warehouse.dag import Model, load_models, models_fingerprint
from warehouse.errors import BuildError, WarehouseNotBuilt
from warehouse.lake import POINTER, Lake, check_writable_path, read_pointer
from warehouse.publish import build_lock, builder
from warehouse.queries import build_state as warehouse_state
from warehouse.state import FORMAT_VERSION, STATE_TABLE, continued_state, write_state

T = TypeVar("T")

__all__ = ["BuildError", "BuildReport", "build", "load_models", "maintain", "warehouse_state"]


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


# the default CPU priority of a build (0 = normal, 19 = lowest): the WAREHOUSE_BUILD_NICE setting
DEFAULT_BUILD_NICE = 10


def build(database_url: str, warehouse_path: Path, *, full: bool = False,
          now: datetime | None = None, data_path: str | None = None,
          nice: int = DEFAULT_BUILD_NICE) -> BuildReport:
    """Build (incrementally unless ``full``) and publish the warehouse in one lake commit.

    ``data_path``: where a new lake keeps its data files (default ``<warehouse_path>/data/``; a lake
    keeps the one it was created with). ``nice``: the build's CPU priority (see :func:`at_priority`).
    Every failure is a :class:`BuildError` with a readable reason (Postgres unreachable, disk full, a
    model failing…); the published snapshot is then left as it was.
    """
    with _readable_errors(warehouse_path):
        return at_priority(nice, lambda: _build(database_url, warehouse_path, full=full, now=now,
                                                data_path=data_path))


def at_priority(nice: int, fn: Callable[[], T]) -> T:
    """``fn()`` run in a thread of its own whose niceness is raised to ``nice`` (0-19), and its result.

    Linux keeps a niceness per thread, and a thread starts with its creator's: DuckDB's worker threads
    (started when the build opens its DuckDB instance) and the build's helper threads run at ``nice``
    too, while the calling thread keeps its own. A reader at normal priority then gets the CPU first
    when both want it, and an idle machine runs the build as fast as before. ``nice`` 0 (or a platform
    without per-thread priorities) runs ``fn`` in the calling thread. A ``KeyboardInterrupt`` in the
    caller (Ctrl-C during ``switchboard warehouse build``) returns at once and the build thread (a
    daemon) ends with the process, as if the process were killed: nothing is half-published (the work
    file's and the lake's commits are atomic; a work file and lake that disagree mean one full build).
    """
    if not 0 <= nice <= 19:
        raise BuildError(f"the build's CPU priority (nice) must be between 0 and 19, not {nice}")
    if nice == 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return fn()
    outcome: list[Any] = []

    def lowered() -> None:
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))

    worker = threading.Thread(target=lowered, name="warehouse-build", daemon=True)
    worker.start()
    worker.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def maintain(database_url: str, warehouse_path: Path, *, keep: timedelta,
             nice: int = DEFAULT_BUILD_NICE) -> dict[str, float]:
    """Expire the snapshots older than ``keep`` and delete the files no kept snapshot reads
    (:func:`warehouse.publish.maintain`); {} if the warehouse was never built. Errors and ``nice`` as
    :func:`build`."""
    with _readable_errors(warehouse_path):
        try:
            lake = read_pointer(warehouse_path)
        except WarehouseNotBuilt:
            return {}
        return at_priority(nice, lambda: publish.maintain(lake, extract.conninfo(database_url), keep=keep))


@contextmanager
def _readable_errors(warehouse_path: Path) -> Iterator[None]:
    try:
        yield
    except BuildError:
        raise
    except psycopg.Error as exc:
        raise BuildError(f"cannot read PostgreSQL: {' '.join(str(exc).split())}") from exc
    except duckdb.Error as exc:
        raise BuildError(f"DuckDB failed: {' '.join(str(exc).split())}") from exc
    except OSError as exc:
        raise BuildError(f"cannot write the warehouse at {warehouse_path}: {exc}") from exc


@dataclass
class _Run:
    """One build in progress: its inputs and what it reports."""

    database_url: str
    models: list[Model]
    models_fp: str
    now: datetime
    full: bool
    prior: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)
    recomputed: int = 0
    replaced: dict[str, incremental.Replaced] = field(default_factory=dict)  # tables updated in place
    unchanged: set[str] = field(default_factory=set)  # published tables this build left as they were


def _build(database_url: str, warehouse_path: Path, *, full: bool, now: datetime | None,
           data_path: str | None = None) -> BuildReport:
    t0 = time.perf_counter()
    if not full:
        # pyarrow's one-time set-up (it imports pandas, ~0.25 s) for the incremental fetch, while the
        # lock is taken and the lake attached
        threading.Thread(target=extract.warm_up, daemon=True).start()
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise BuildError("build(now=...) must be timezone-aware")
    warehouse_path = Path(warehouse_path).expanduser().resolve()
    check_writable_path(warehouse_path)
    pg = extract.conninfo(database_url)
    lake = Lake.for_build(pg, warehouse_path, data_path)
    with ExitStack() as stack, ThreadPoolExecutor(1) as background:
        # an existing lake is attached (it only reads the catalog) while the models are loaded and the
        # lock taken; a new lake's catalog is created under the lock
        connecting = (background.submit(publish.connect_builder, lake)
                      if (warehouse_path / POINTER).exists() else None)
        try:
            models = load_models()
            models_fp = models_fingerprint(models)
            stack.enter_context(build_lock(lake, pg))
        except BaseException:
            publish.discard(connecting)
            raise
        con = stack.enter_context(builder(lake, connecting))
        t = time.perf_counter()
        started = t - t0  # models, lock, DuckDB with the lake attached
        prior, full = incremental.previous_state(continued_state(con), models_fp, full)
        # the work file is attached (and the last build's WAL checkpointed) while Postgres is read
        opening = None if full else background.submit(_timed, publish.open_work, con, lake)
        run = _Run(database_url, models, models_fp, now, full, prior)
        run.timings["start"] = started
        run.timings["open"] = time.perf_counter() - t
        fetched = None if full else _fetch(database_url, prior, run.timings)
        t = time.perf_counter()
        attached = False
        if opening is not None:
            work_state, run.timings["open_work"] = opening.result()
            attached = bool(work_state)
            if prior.get("built_at") != work_state.get("built_at"):
                incremental.log.info("the builder's work file does not match the published warehouse: "
                                     "rebuilding in full")
                if attached:
                    con.execute(f"detach {publish.WORK}")
                run.prior, run.full, fetched, attached = {}, True, None, False
        full = run.full
        with publish.work_database(con, lake, fresh=full, attached=attached):
            run.timings["attach"] = time.perf_counter() - t
            # an incremental build updates the work file in one transaction; a full one writes a new
            # file (swapped in at the end) and commits as it goes (its extract runs on several connections)
            con.execute("begin transaction" if not full else "checkpoint")
            _run(con, run, fetched)
            t = time.perf_counter()
            con.execute("commit" if not full else "checkpoint")
            run.timings["commit"] = time.perf_counter() - t
            t = time.perf_counter()
            con.execute("begin transaction")
            publish.publish(con, models, run.replaced, STATE_TABLE, unchanged=frozenset(run.unchanged),
                            timings=run.timings)
            con.execute("commit")
            run.timings["publish"] = time.perf_counter() - t
            t = time.perf_counter()
        run.timings["detach"] = time.perf_counter() - t
    lake.write_pointer()
    return BuildReport(warehouse_path, run.full, run.rows, run.built, time.perf_counter() - t0, run.recomputed,
                       run.timings, run.keys)


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """``fn(*args)`` and the seconds it took (for a step run in the background)."""
    t = time.perf_counter()
    return fn(*args), time.perf_counter() - t


def _fetch(database_url: str, prior: dict[str, Any], timings: dict[str, float]) -> extract.Fetched:
    windows = {name: extract.IdWindow.from_state(prior, name) for name in extract.WATERMARKED}
    fetched = extract.fetch_incremental(database_url, windows, timings)
    timings["fetch"] = sum(v for k, v in timings.items() if k.startswith("extract/"))
    return fetched


def _run(con: duckdb.DuckDBPyConnection, run: _Run, fetched: extract.Fetched | None) -> None:
    t = time.perf_counter()
    if fetched is None:
        windows = extract.id_windows_now(run.database_url)
        run.rows = extract.extract_full(con, run.database_url, run.timings)
    else:
        windows = fetched.windows
        run.rows = extract.apply_incremental(con, fetched)
    run.timings["extract" if fetched is None else "apply"] = time.perf_counter() - t

    t = time.perf_counter()
    state = run.prior
    con.execute("create or replace table build_info as select ?::timestamptz as as_of", [run.now])
    calendars = extract.calendars_json(con)
    cal_fp, ref_fp = fingerprint(calendars), incremental.reference_fingerprint(con)
    prior_range = state.get("data_range")
    data = incremental.data_range(con, state.get("watermarks") if prior_range else None, prior_range)
    start = min(data[0], run.now) if data else run.now
    end = (max(data[1], run.now) if data else run.now) + timedelta(days=1)
    covered = state.get("calendar_range") if state.get("calendar_fingerprint") == cal_fp else None
    if covered and datetime.fromisoformat(covered[0]) <= start and end <= datetime.fromisoformat(covered[1]):
        calendar_range = covered  # the calendar tables already cover the data: keep them
    else:
        # a week ahead, so that the following incremental builds need not regenerate them
        build_calendar_tables(con, calendars, start, end + timedelta(days=7))
        calendar_range = [start.isoformat(), (end + timedelta(days=7)).isoformat()]
    everything = run.full or state.get("calendar_fingerprint") != cal_fp or state.get("reference_fingerprint") != ref_fp
    if everything and not run.full:
        incremental.log.info("calendars, SLA targets, channels or users changed: recomputing every conversation")
    if not run.full and state.get("reference_fingerprint") == ref_fp:
        # the published reference tables are copies of these raw tables: the lake already holds them
        run.unchanged.update(incremental.REFERENCE_MODELS)
    run.recomputed = incremental.set_scope(con, recompute_all=everything, now=run.now)
    run.timings["calendar"] = time.perf_counter() - t

    run.built = incremental.run_models(con, run.models, scoped=not run.full, keyed=not everything,
                                       timings=run.timings, keys=run.keys, replaced=run.replaced,
                                       unchanged=run.unchanged)
    write_state(con, {
        "format": FORMAT_VERSION,
        "models_fingerprint": run.models_fp,
        "calendar_fingerprint": cal_fp,
        "reference_fingerprint": ref_fp,
        "calendar_range": calendar_range,
        "data_range": [d.isoformat() for d in data] if data else None,
        "watermarks": {name: w.watermark for name, w in windows.items()},
        "id_windows": {name: w.to_json() for name, w in windows.items()},
        "built_at": run.now.isoformat(),
        "full": run.full,
    })
