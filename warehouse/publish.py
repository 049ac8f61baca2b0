"""Publishing a build: one builder at a time, one DuckLake commit per build, old snapshots expired.

* :func:`build_lock`: a PostgreSQL advisory lock on the catalog's database (works across machines);
  a second build fails at once.
* :func:`builder`: the build's DuckDB connection: a private scratch file as ``scratch`` (removed after
  the build) with the lake attached as ``lake``. A full build runs its models in the scratch file
  (native tables) and :func:`publish_full` copies every table into the lake in one transaction; an
  incremental build runs in one lake transaction. Either way readers see the previous snapshot until
  the commit and the new one after: never a half build, and no copy of the warehouse.
* :func:`maintain`: expire old snapshots, merge the small files of incremental builds, delete the
  files nobody can read any more (the worker runs it on a schedule).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import duckdb
import psycopg

from warehouse.errors import BuildError
from warehouse.lake import ALIAS, Lake, attach, no_progress_bar

log = logging.getLogger(__name__)


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


SCRATCH = "scratch"  # the scratch database's name (from its file name)


@contextmanager
def builder(lake: Lake) -> Iterator[duckdb.DuckDBPyConnection]:
    """The build's connection (scratch file as ``scratch``, the lake attached and in use). Call under
    :func:`build_lock`; scratch files of killed builds are removed first."""
    home = Path(lake.path)
    home.mkdir(parents=True, exist_ok=True)
    for stale in home.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    scratch = home / f".build-{os.getpid()}"
    scratch.mkdir()
    con = duckdb.connect(str(scratch / f"{SCRATCH}.duckdb"))
    try:
        con.execute("set TimeZone = 'UTC'")
        no_progress_bar(con)
        con.execute("set asof_loop_join_threshold = 0")  # see docs/warehouse.md (ASOF over scans)
        attach(lake, con, read_only=False)
        yield con
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)


def publish_full(con: duckdb.DuckDBPyConnection, views: dict[str, str]) -> None:
    """Replace the lake's content by the scratch database's tables and ``views`` (name → select),
    in the open transaction of ``con``; tables and views the build no longer makes are dropped."""
    tables = [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where database_name = ? and not temporary order by 1", [SCRATCH]).fetchall()]
    existing = con.execute(
        "select table_name, 'table' from duckdb_tables() where database_name = ? union all "
        "select view_name, 'view' from duckdb_views() where database_name = ? and not internal", [ALIAS, ALIAS]).fetchall()
    for name, kind in existing:
        if name not in (tables if kind == "table" else views):
            con.execute(f'drop {kind} {ALIAS}."{name}"')
    for name in tables:
        con.execute(f'create or replace table {ALIAS}."{name}" as from {SCRATCH}."{name}"')  # noqa: S608 (identifiers from the catalog)
    for name, sql in views.items():
        con.execute(f'create or replace view {ALIAS}."{name}" as {sql}')


def maintain(lake: Lake, conninfo: str, *, keep: timedelta) -> dict[str, float]:
    """Expire the snapshots older than ``keep`` (never the current one), merge small files, and delete
    the files no kept snapshot reads (scheduled deletions older than ``keep`` too: a reader still on an
    old snapshot keeps its files for that long). Returns seconds per step."""
    timings: dict[str, float] = {}
    with build_lock(lake, conninfo), builder(lake) as con:
        interval = f"interval '{int(keep.total_seconds())} seconds'"
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
    return timings
