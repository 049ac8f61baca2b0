"""Incremental sync cursors per (channel, scope). Written only with their batch (see ingest_items)."""

from __future__ import annotations

from sqlalchemy import select

from switchboard.db.schema import SyncCursor
from switchboard.uow import UnitOfWork


def get_cursor(uow: UnitOfWork, channel_id: int, scope: str) -> str | None:
    return uow.session.execute(
        select(SyncCursor.cursor).where(SyncCursor.channel_id == channel_id, SyncCursor.scope == scope)
    ).scalar_one_or_none()
