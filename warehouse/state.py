"""The build state: what the last build saw and decided, kept inside the warehouse (``_warehouse_meta``).

One JSON document under the key ``state`` (format, models/calendar/reference fingerprints, calendar
and data ranges, id watermarks and windows, ``built_at``, ``full``). The runner writes it in the same
transaction/file as the tables it describes, so readers always see a state that matches the data.
This module is the only one that reads or writes it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import duckdb

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"


def read_state(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The state of the warehouse ``con`` reads ({} when it has none)."""
    try:
        row = con.execute("select value from _warehouse_meta where key = 'state'").fetchone()
    except duckdb.CatalogException:
        return {}
    return json.loads(row[0]) if row else {}


def write_state(con: duckdb.DuckDBPyConnection, state: dict[str, Any]) -> None:
    con.execute("create table if not exists _warehouse_meta (key varchar primary key, value varchar)")
    con.execute("insert or replace into _warehouse_meta values ('state', ?)", [json.dumps(state)])


def warehouse_state(warehouse_path: Path) -> dict[str, Any]:
    """The published warehouse's build state (watermarks, built_at…), read-only; {} if none."""
    if not Path(warehouse_path).exists():
        return {}
    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        return read_state(con)
    finally:
        con.close()


def published_state(warehouse_path: Path) -> dict[str, Any]:
    """The state an incremental build starts from: {} (→ a full build) when there is none, it cannot be
    read, or it has another format."""
    try:
        state = warehouse_state(warehouse_path)
    except duckdb.Error as exc:
        log.warning("the published warehouse %s cannot be opened (%s): rebuilding it in full", warehouse_path, exc)
        return {}
    return state if state.get("format") == FORMAT_VERSION else {}
