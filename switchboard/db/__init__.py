"""Database access: the URL (embedded PostgreSQL by default), engines, migrations."""

from __future__ import annotations

from switchboard.db.engine import database_url, make_engine, sync_url

__all__ = ["database_url", "make_engine", "sync_url"]
