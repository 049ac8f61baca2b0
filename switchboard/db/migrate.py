"""Alembic, driven from code: `switchboard db upgrade` and the test fixtures call :func:`upgrade`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_ID = 7_301_044_001  # advisory lock so that several processes upgrading at once take turns


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to ``revision``; idempotent and safe to run concurrently."""
    eng = create_engine(url)
    try:
        with eng.connect() as con:
            con.execute(text("select pg_advisory_lock(:k)"), {"k": _LOCK_ID})
            try:
                cfg = alembic_config(url)
                cfg.attributes["connection"] = con
                command.upgrade(cfg, revision)
                con.commit()
            finally:
                con.execute(text("select pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
                con.commit()
    finally:
        eng.dispose()


def current_revision(url: str) -> str | None:
    eng = create_engine(url)
    try:
        with eng.connect() as con:
            exists = con.execute(text("select to_regclass('alembic_version')")).scalar()
            if not exists:
                return None
            return con.execute(text("select version_num from alembic_version")).scalar()
    finally:
        eng.dispose()


def head_revision() -> str:
    """The newest migration in this checkout (what ``upgrade`` brings a database to)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("postgresql://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must form one chain; heads: {', '.join(heads)}")
    return heads[0]
