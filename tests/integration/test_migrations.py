"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text

from switchboard.db.migrate import current_revision, head_revision, upgrade
from switchboard.db.schema import metadata


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as con:
        ctx = MigrationContext.configure(con, opts={"compare_type": True})
        diff = compare_metadata(ctx, metadata)
    assert diff == [], f"models and migrations differ; run `python -m switchboard.db.regen`: {diff}"


def test_upgrade_is_idempotent(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    eng = create_engine(db_url)
    with eng.connect() as con:
        assert con.execute(text("select count(*) from alembic_version")).scalar() == 1
    eng.dispose()
