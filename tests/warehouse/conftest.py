from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from warehouse.build import BuildReport, build


@pytest.fixture
def wh(db_url: str, tmp_path: Path) -> Callable[..., Any]:
    """``wh(now)`` builds (full unless full=False) and returns a read-only DuckDB connection factory."""
    path = tmp_path / "warehouse.duckdb"

    class Warehouse:
        def __init__(self) -> None:
            self.path = path
            self.report: BuildReport | None = None

        def build(self, now: datetime, *, full: bool = True) -> Warehouse:
            self.report = build(db_url, path, full=full, now=now)
            return self

        def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
            con = duckdb.connect(str(path), read_only=True)
            try:
                con.execute("set TimeZone = 'UTC'")
                cur = con.execute(sql, params or [])
                names = [d[0] for d in cur.description or []]
                return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            finally:
                con.close()

    return lambda: Warehouse()
