from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from warehouse import queries
from warehouse.build import BuildReport, build, load_models
from warehouse.lake import attach, read_pointer
from warehouse.publish import work_file
from warehouse.state import STATE_TABLE


@contextmanager
def work(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the builder's work file of the warehouse at ``path`` (every model)."""
    con = duckdb.connect(str(work_file(path)), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


@contextmanager
def two_warehouses(path: Path, other: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The work files of the warehouses at ``path`` (the default catalog) and ``other`` (as ``f``)."""
    with work(path) as con:
        con.execute(f"attach '{work_file(other)}' as f (read_only)")
        yield con


def _differing(con: duckdb.DuckDBPyConnection, a: str, b: str) -> int:
    row = con.execute(f"select count(*) from ((select * from {a} except all select * from {b}) "
                      f"union all (select * from {b} except all select * from {a}))").fetchone()
    return int(row[0]) if row else -1


def assert_same_tables(path: Path, other: Path, names: list[str]) -> None:
    """Every table of ``names`` holds the same rows in both warehouses' work files."""
    with two_warehouses(path, other) as con:
        for name in names:
            assert _differing(con, name, f"f.{name}") == 0, f"{name}: the warehouses differ"


def assert_published(path: Path) -> None:
    """Readers see exactly the work file's rows of every published model and the build state."""
    con = duckdb.connect()
    try:
        attach(read_pointer(path), con, read_only=True)
        con.execute(f"attach '{work_file(path)}' as w (read_only)")
        for name in [m.name for m in load_models() if m.published] + [STATE_TABLE]:
            assert _differing(con, f"lake.{name}", f"w.{name}") == 0, f"{name}: published rows differ from the build's"
    finally:
        con.close()


@pytest.fixture
def wh(db_url: str, tmp_path: Path) -> Callable[..., Any]:
    """``wh(now)`` builds (full unless full=False) and returns a read-only DuckDB connection factory."""
    path = tmp_path / "warehouse"

    class Warehouse:
        def __init__(self) -> None:
            self.path = path
            self.report: BuildReport | None = None

        def build(self, now: datetime, *, full: bool = True) -> Warehouse:
            self.report = build(db_url, path, full=full, now=now)
            return self

        def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
            with queries.connect(path) as con:
                cur = con.execute(sql, params or [])
                names = [d[0] for d in cur.description or []]
                return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    return lambda: Warehouse()
