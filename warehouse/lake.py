"""Where the published warehouse lives: a DuckLake whose catalog is in PostgreSQL.

``WAREHOUSE_PATH`` is a directory holding ``lake.json`` (where the catalog is: a libpq conninfo
*without* password — libpq takes it from ``PGPASSWORD``/``~/.pgpass`` —, its metadata schema and the
data path) and, unless the data path points elsewhere (object storage), the Parquet files under
``data/``. The catalog lives in the system of record's database, in its own schema (``lake_<hash of
the warehouse path>``: several warehouses can share one database). ``lake.json`` is written after
the first build committed, so a warehouse without it has never been built.

Readers and the builder attach the same lake (:func:`attach`); each DuckDB transaction reads one
committed snapshot, so a reader sees the last complete build and never waits for a writer.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import psycopg

from warehouse.errors import BuildError, WarehouseNotBuilt

POINTER = "lake.json"
ALIAS = "lake"


def sql_literal(value: str) -> str:
    """A quoted SQL string (for ATTACH/INSTALL, which take no bound parameters; configuration only)."""
    return "'" + value.replace("'", "''") + "'"


@functools.cache
def extension_path(package: str, name: str) -> str:
    """The extension file shipped by the PyPI package ``duckdb-extension-<name>`` for this DuckDB."""
    module = __import__(package)
    base = Path(str(module.__file__)).parent / "extensions"
    found = sorted(base.glob(f"v{duckdb.__version__}/{name}.duckdb_extension")) or sorted(
        base.glob(f"*/{name}.duckdb_extension"))
    if not found:
        raise RuntimeError(f"the DuckDB {name} extension is not shipped under {base}; "
                           f"install duckdb-extension-{name}=={duckdb.__version__}")
    return str(found[0])


def load_extensions(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """``INSTALL '<shipped file>'; LOAD <name>`` (DuckDB cannot download extensions here)."""
    for name in names:
        con.execute(f"INSTALL {sql_literal(extension_path(f'duckdb_extension_{name}', name))}")
        con.execute(f"LOAD {name}")


@dataclass(frozen=True)
class Lake:
    """One published warehouse: its catalog (conninfo + schema) and where its data files are."""

    path: str  # the WAREHOUSE_PATH directory
    catalog: str  # libpq conninfo without password
    schema: str
    data_path: str

    @classmethod
    def for_build(cls, conninfo: str, warehouse_path: Path, data_path: str | None = None) -> Lake:
        """The lake of ``warehouse_path`` (its pointer if it has one, else a new one in ``conninfo``'s database)."""
        try:
            return read_pointer(warehouse_path)
        except WarehouseNotBuilt:
            pass
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        params.pop("password", None)
        path = str(Path(warehouse_path).resolve())
        schema = "lake_" + hashlib.sha256(path.encode()).hexdigest()[:12]
        return cls(path, psycopg.conninfo.make_conninfo("", **params), schema, data_path or str(Path(path) / "data") + "/")

    def write_pointer(self) -> None:
        target = Path(self.path) / POINTER
        tmp = target.with_name(f".{POINTER}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(target)


def read_pointer(warehouse_path: Path | str) -> Lake:
    """The lake published at ``warehouse_path``; :class:`WarehouseNotBuilt` if none was built there."""
    p = Path(warehouse_path).expanduser()
    if p.is_file():
        raise WarehouseNotBuilt(f"{p} is a file (a warehouse from before DuckLake?): WAREHOUSE_PATH is now a "
                                "directory; remove the file or choose another path, then build")
    try:
        data = json.loads((p / POINTER).read_text())
    except FileNotFoundError:
        raise WarehouseNotBuilt(f"no warehouse at {p}: run `switchboard warehouse build` first") from None
    return Lake(**data)


def attach(lake: Lake, con: duckdb.DuckDBPyConnection, *, read_only: bool, alias: str = ALIAS) -> None:
    """Attach ``lake`` to ``con`` as ``alias`` and make it the default catalog."""
    load_extensions(con, "postgres", "ducklake")
    options = [f"DATA_PATH {sql_literal(lake.data_path)}", f"METADATA_SCHEMA {sql_literal(lake.schema)}"]
    if read_only:
        options.append("READ_ONLY")
    con.execute(f"ATTACH {sql_literal('ducklake:postgres:' + lake.catalog)} AS {alias} ({', '.join(options)})")
    con.execute(f"USE {alias}")


def no_progress_bar(con: duckdb.DuckDBPyConnection) -> None:
    """No progress bar drawn on stdout by a slow statement (in Jupyter DuckDB refuses the setting
    unless ipywidgets is installed, and draws none there without it)."""
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("set enable_progress_bar_print = false")


def snapshot_id(con: duckdb.DuckDBPyConnection) -> int:
    """The id of the snapshot ``con``'s transaction reads."""
    row = con.execute("select * from ducklake_current_snapshot(?)", [ALIAS]).fetchone()
    return int(row[0]) if row else 0


def check_writable_path(warehouse_path: Path) -> None:
    if warehouse_path.is_file():
        raise BuildError(f"{warehouse_path} is a file (a warehouse from before DuckLake?): WAREHOUSE_PATH is now a "
                         "directory; remove the file or choose another path")
