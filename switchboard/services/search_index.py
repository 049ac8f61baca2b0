"""Upkeep of the message search index (``ix_messages_body_trgm``, trigrams of message bodies).

Ingest appends a message's trigrams to GIN's pending list, up to 64 MB (migration 0016), instead of
merging them into the index itself every 4 MB; :func:`merge_pending` merges them, run by the
``maintain-inbox`` flow every 30 s beside the ingest workers. Searches read the pending list as well (a
new message is found at once), so the merge is about keeping the list, and each search's scan of it,
short. Never commits: the caller owns the transaction.
"""

from __future__ import annotations

from psycopg.errors import InsufficientPrivilege
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from switchboard.uow import UnitOfWork

SEARCH_INDEX = "ix_messages_body_trgm"

_MERGE = text(f"select gin_clean_pending_list('{SEARCH_INDEX}'::regclass)")


def merge_pending(uow: UnitOfWork) -> int | None:
    """Merge the pending list of the message search index into it: the pages merged, or None when the
    database user may not (only the index's owner may; autovacuum then does it). A refusal is confined
    to a savepoint: the caller's transaction goes on."""
    try:
        with uow.session.begin_nested():
            merged = uow.session.execute(_MERGE).scalar()
    except DBAPIError as exc:
        if isinstance(exc.orig, InsufficientPrivilege):
            return None
        raise
    return int(merged or 0)
