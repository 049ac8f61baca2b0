from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from warehouse import queries
from warehouse.build import BuildReport, build
from warehouse.lake import attach, read_pointer


@contextmanager
def two_warehouses(path: Path, other: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection reading the warehouse at ``path`` (the default catalog) and ``other`` (as ``f``)."""
    con = duckdb.connect()
    try:
        attach(read_pointer(other), con, read_only=True, alias="f")
        attach(read_pointer(path), con, read_only=True)
        yield con
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
