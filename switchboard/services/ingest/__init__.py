"""Ingest what connectors parsed: messages, echoes, statuses, watermarks, edits, deletions.

Batch-oriented: a batch costs a handful of set-based statements whatever its size (contact upsert,
conversation lock/create, message insert, one UPDATE of the touched conversations, one batched insert
of events), so that a sync or a burst of webhooks goes at thousands of messages per second.
Idempotent: re-ingesting a batch changes nothing. Never commits: the caller (a workflow step, the
importer) owns the transaction.

The package, one job per module:

* :mod:`.validation` checks the parsed items and sorts them by kind;
* :mod:`.statements` holds the SQL (JSON rows with named fields);
* :mod:`.replay` applies messages to conversation state with the domain rules;
* :mod:`.messages` writes new messages and their conversations;
* :mod:`.statuses` applies statuses, read watermarks, edits and deletions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from switchboard.clock import utcnow
from switchboard.domain.conversation import can_advance, preview_of
from switchboard.errors import NotFound
from switchboard.services.ingest import statements as sql
from switchboard.services.ingest.messages import Target, ingest_messages
from switchboard.services.ingest.result import IngestResult, Tally
from switchboard.services.ingest.statuses import apply_change, apply_statuses, apply_watermark
from switchboard.services.ingest.validation import sort_items
from switchboard.types import ParsedItem
from switchboard.uow import UnitOfWork

__all__ = ["IngestResult", "can_advance", "ingest_items", "preview_of"]


def ingest_items(
    uow: UnitOfWork,
    *,
    channel_id: int,
    items: Sequence[ParsedItem],
    now: datetime | None = None,
    cursor: tuple[str, str] | None = None,
) -> IngestResult:
    """Apply one batch of parsed items of one channel (see the package docstring). Does not commit.

    ``cursor`` = (scope, value): the channel's sync cursor, written with the batch it belongs to.
    Raises InvalidInput (nothing written) when an item is malformed, NotFound for an unknown channel.
    """
    now = now or utcnow()
    ch = uow.session.execute(sql.CHANNEL, {"channel": channel_id}).first()
    if ch is None:
        raise NotFound(f"channel {channel_id} does not exist")
    batch = sort_items(items)
    target = Target(int(ch.organization_id), channel_id, str(ch.provider))
    tally = Tally()
    tally.counts["messages_duplicate"] += batch.repeated
    tally.counts["ignored"] += batch.ignored
    if batch.messages:
        ingest_messages(uow, target, batch.messages, now, tally)
    if batch.statuses:
        apply_statuses(uow, channel_id, batch.statuses, tally)
    for mark in batch.watermarks:
        apply_watermark(uow, target.organization_id, channel_id, target.provider, mark, tally)
    for change in batch.changes:
        apply_change(uow, channel_id, change, tally)
    if cursor is not None:
        uow.session.execute(sql.UPSERT_CURSOR, {"channel": channel_id, "scope": cursor[0], "cursor": cursor[1],
                                                "now": now})
    c = tally.counts
    if ch.auto_assign and (c["conversations_created"] or c["conversations_reopened"] or c["messages_created"]):
        from switchboard.services.assignment import assign_pending

        assign_pending(uow, target.organization_id, now=now)
    return tally.result()
