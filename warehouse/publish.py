"""Publishing a build: one builder at a time, its private work file, one DuckLake commit per build.

* :func:`build_lock`: a PostgreSQL advisory lock on the catalog's database (works across machines);
  a second build fails at once.
* :func:`builder` + :func:`work_database`: the build's DuckDB connection, the lake attached as
  ``lake`` and the builder's private **work file** (``<WAREHOUSE_PATH>/builder/work.duckdb``: every
  raw, intermediate and mart table as a native DuckDB table, updated in place by incremental builds
  in one transaction — no copy) as ``work``. A full build writes a new work file and swaps it in
  after its lake commit.
* :func:`publish`: in one lake transaction, apply what the build changed to the published models
  (marts and the small reference tables): the same delete + insert the build made in the work file
  for the tables it updated in place, a replacement for the others. Readers see the previous snapshot
  until the commit and the new one after: never a half build.
* :func:`maintain`: expire old snapshots, merge the small files of incremental builds, delete the
  files nobody can read any more (the worker runs it on a schedule).

The work file and the lake each keep the build state; an incremental build continues only when both
carry the same ``built_at`` (else it rebuilds in full: a lost work file, a crash between the two commits).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import psycopg

from warehouse.dag import Model
from warehouse.errors import BuildError
from warehouse.lake import ALIAS, Lake, attach, no_progress_bar, sql_literal
from warehouse.state import continued_state

if TYPE_CHECKING:
    from warehouse.incremental import Replaced

log = logging.getLogger(__name__)

WORK = "work"  # the work database's name (from its file name)
# open_work checkpoints the work file when its WAL (the incremental builds since the last checkpoint)
# is larger than this; below DuckDB's own threshold (checkpoint_threshold, 16 MB), which would
# checkpoint inside a build's commit instead
WORK_WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024


def _lock_key(lake: Lake) -> int:
    return int.from_bytes(hashlib.sha256(lake.schema.encode()).digest()[:8], "big", signed=True)


@contextmanager
def build_lock(lake: Lake, conninfo: str) -> Iterator[None]:
    """One build (or maintenance) at a time per lake: ``pg_try_advisory_lock`` held for the block."""
    with psycopg.connect(conninfo, autocommit=True) as pg:
        row = pg.execute("select pg_try_advisory_lock(%s)", [_lock_key(lake)]).fetchone()
        if not row or not row[0]:
            raise BuildError(f"another warehouse build is running (advisory lock of {lake.schema})")
        try:
            yield
        finally:
            pg.execute("select pg_advisory_unlock(%s)", [_lock_key(lake)])


def work_file(warehouse_path: Path | str) -> Path:
    """The builder's private work file (every model as a native table; not for readers)."""
    return Path(warehouse_path) / "builder" / f"{WORK}.duckdb"


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)


def connect_builder(lake: Lake) -> duckdb.DuckDBPyConnection:
    """A new DuckDB instance for a build, with the lake attached as ``lake`` (~0.2 s: the extensions
    loaded, the catalog read; :func:`warehouse.build.build` runs it while it loads the models)."""
    # The builder runs only our SQL, and loads only the extension files shipped by the installed
    # packages: their signature check (~0.3 s per new DuckDB instance, hashing ~80 MB) is skipped here.
    # Readers run analysts' SQL and keep the check.
    con = duckdb.connect(config={"allow_unsigned_extensions": True})
    try:
        con.execute("set TimeZone = 'UTC'")
        no_progress_bar(con)
        con.execute("set asof_loop_join_threshold = 0")  # DuckDB 1.5.5 may plan ASOF joins as nested loops
        attach(lake, con, read_only=False)
    except BaseException:
        con.close()
        raise
    return con


def discard(connecting: Future[duckdb.DuckDBPyConnection] | None) -> None:
    """Close the connection :func:`connect_builder` opened for a build that stopped before using it."""
    if connecting is not None:
        with contextlib.suppress(Exception):
            connecting.result().close()


@contextmanager
def builder(lake: Lake, connecting: Future[duckdb.DuckDBPyConnection] | None = None
            ) -> Iterator[duckdb.DuckDBPyConnection]:
    """The build's connection (``connecting``'s, else a new one; see :func:`connect_builder` and
    :func:`work_database`), closed when the block ends.

    After a build that went through, the instance is closed in a thread of its own: closing it frees
    the build's temp tables and buffers (~0.1 s at 10 M messages), and by then the work file is
    detached and the lake committed. (Not a daemon thread, even when the build runs in one —
    :func:`warehouse.build.at_priority` —: the interpreter waits for it at exit.)
    After a failure it is closed at once (the work file may still be attached to it)."""
    con = connecting.result() if connecting is not None else connect_builder(lake)
    try:
        yield con
    except BaseException:
        con.close()
        raise
    threading.Thread(target=con.close, name="warehouse-builder-close", daemon=False).start()


def open_work(con: duckdb.DuckDBPyConnection, lake: Lake) -> dict[str, Any]:
    """Attach the existing work file as ``work`` and return its build state ({} and nothing attached
    when there is none or it cannot be read: the build is then full).

    Incremental builds detach the work file without a checkpoint (:func:`work_database`): what the
    last ones wrote is in the file's WAL, replayed here. It is checkpointed only once it has grown past
    ``WORK_WAL_CHECKPOINT_BYTES``: a checkpoint costs ~0.2 s even for the ~0.6 MB an incremental build
    writes (blocks of the file rewritten and synced), replaying a WAL of a few MB ~0.03 s per MB. The
    build runs this in the background while it reads Postgres."""
    work = work_file(lake.path)
    if not work.exists():
        return {}
    cur = con.cursor()
    try:
        try:
            cur.execute(f"attach {sql_literal(str(work))} as {WORK}")
        except duckdb.Error as exc:
            log.warning("the builder's work file %s cannot be opened (%s): rebuilding in full", work, exc)
            return {}
        try:
            wal = work.with_name(work.name + ".wal")
            if wal.exists() and wal.stat().st_size > WORK_WAL_CHECKPOINT_BYTES:
                cur.execute(f"checkpoint {WORK}")
            cur.execute(f"use {WORK}")
            return continued_state(cur)
        except BaseException:
            cur.execute(f"use {ALIAS}")
            cur.execute(f"detach {WORK}")
            raise
    finally:
        cur.close()


@contextmanager
def work_database(con: duckdb.DuckDBPyConnection, lake: Lake, *, fresh: bool,
                  attached: bool = False) -> Iterator[None]:
    """Use the work file as ``work`` (``attached``: :func:`open_work` attached it, else attach it here);
    ``fresh``: a new, empty one, swapped in over the old one when the block ends normally (removed
    when it raises). The existing work file is detached without a checkpoint (its WAL holds this
    build: :func:`open_work` replays it at the start of the next build, while Postgres is read, and
    checkpoints it once it has grown past ``WORK_WAL_CHECKPOINT_BYTES``);
    a fresh one is checkpointed by the full build itself. Call under :func:`build_lock`."""
    work = work_file(lake.path)
    work.parent.mkdir(parents=True, exist_ok=True)
    for stale in work.parent.glob(".new-*"):
        shutil.rmtree(stale, ignore_errors=True)
    target = work.parent / f".new-{os.getpid()}" / work.name if fresh else work
    target.parent.mkdir(exist_ok=True)
    if not attached:
        con.execute(f"attach {sql_literal(str(target))} as {WORK}")
    try:
        con.execute(f"use {WORK}")
        yield
        con.execute(f"use {ALIAS}")
        if not fresh:
            con.execute("pragma disable_checkpoint_on_shutdown")
        con.execute(f"detach {WORK}")
        if fresh:
            _remove(work)
            os.replace(target, work)
    finally:
        if fresh:
            shutil.rmtree(target.parent, ignore_errors=True)


def publish(con: duckdb.DuckDBPyConnection, models: list[Model], replaced: dict[str, Replaced],
            state_table: str, *, unchanged: frozenset[str] = frozenset(),
            timings: dict[str, float] | None = None) -> None:
    """Apply the build to the lake's published models in the open lake transaction of ``con``.

    ``replaced``: model → the lake rows to delete and which of its new rows (``_new_<model>``) to insert,
    for the tables the build updated in place; every other published model, and ``state_table``, is
    copied whole, except the ``unchanged`` ones the lake already holds (the reference tables when they
    did not change, the keyed marts when no key was in scope). Lake
    tables and views no build publishes any more are dropped. Seconds per table in ``timings``.
    """
    names = [m.name for m in models if m.published] + [state_table]
    for name, kind in con.execute(
            "select table_name, 'table' from duckdb_tables() where database_name = ? union all "
            "select view_name, 'view' from duckdb_views() where database_name = ? and not internal",
            [ALIAS, ALIAS]).fetchall():
        if kind == "view" or name not in names:
            con.execute(f'drop {kind} {ALIAS}."{name}"')
    existing = {r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = ?",
                                          [ALIAS]).fetchall()}
    for name in names:
        started = time.perf_counter()
        if name in unchanged and name in existing:
            continue
        if name in replaced and name in existing:
            r = replaced[name]
            con.execute(f'delete from {ALIAS}."{name}" where {r.where}')  # noqa: S608 (identifiers from code)
            con.execute(f'insert into {ALIAS}."{name}" by name select * from "_new_{name}" '  # noqa: S608 (identifiers from code)
                        f'where {r.new_rows}')
        else:
            con.execute(f'create or replace table {ALIAS}."{name}" as from {WORK}."{name}"')  # noqa: S608 (identifiers from code)
        if timings is not None:
            timings[f"publish/{name}"] = time.perf_counter() - started


def maintain(lake: Lake, conninfo: str, *, keep: timedelta) -> dict[str, float]:
    """Expire the snapshots older than ``keep`` (never the current one), merge small files, and delete
    the files no kept snapshot reads (scheduled deletions older than ``keep`` too: a reader still on an
    old snapshot keeps its files for that long). Returns seconds per step."""
    timings: dict[str, float] = {}
    interval = f"interval '{int(keep.total_seconds())} seconds'"
    with build_lock(lake, conninfo):
        con = duckdb.connect()
        try:
            no_progress_bar(con)
            attach(lake, con, read_only=False)
            for step, sql in (
                ("merge", f"call ducklake_merge_adjacent_files('{ALIAS}')"),
                ("expire", f"call ducklake_expire_snapshots('{ALIAS}', older_than => now() - {interval})"),
                ("cleanup", f"call ducklake_cleanup_old_files('{ALIAS}', older_than => now() - {interval})"),
                # files written by builds that failed before their commit
                ("orphans", f"call ducklake_delete_orphaned_files('{ALIAS}', older_than => now() - {interval})"),
            ):
                t = time.perf_counter()
                con.execute(sql)
                timings[step] = time.perf_counter() - t
        finally:
            con.close()
    return timings
