"""The build state: what the last build saw and decided, kept inside the warehouse (``_warehouse_meta``).

One JSON document under the key ``state`` (format, models/calendar/reference fingerprints, calendar
and data ranges, id watermarks and windows, ``built_at``, ``full``). The runner writes it in the same
lake transaction as the tables it describes, so readers always see a state that matches the data.
This module is the only one that reads or writes it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import duckdb

log = logging.getLogger(__name__)

FORMAT_VERSION = "2"  # 2: published as a DuckLake
STATE_TABLE = "_warehouse_meta"


def read_state(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The state of the warehouse ``con`` reads ({} when it has none)."""
    try:
        row = con.execute("select value from _warehouse_meta where key = 'state'").fetchone()
    except duckdb.CatalogException:
        return {}
    return json.loads(row[0]) if row else {}


def write_state(con: duckdb.DuckDBPyConnection, state: dict[str, Any]) -> None:
    # a lake table has no keys: replace the row
    con.execute("create table if not exists _warehouse_meta (key varchar, value varchar)")
    con.execute("delete from _warehouse_meta where key = 'state'")
    con.execute("insert into _warehouse_meta values ('state', ?)", [json.dumps(state)])


def continued_state(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The state an incremental build starts from: {} (→ a full build) when there is none, it cannot be
    read, or it has another format."""
    try:
        state = read_state(con)
    except duckdb.Error as exc:
        log.warning("the published warehouse's state cannot be read (%s): rebuilding it in full", exc)
        return {}
    return state if state.get("format") == FORMAT_VERSION else {}
