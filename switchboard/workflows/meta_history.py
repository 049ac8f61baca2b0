"""History pull for Messenger and Instagram (Conversations API): catches what webhooks missed.

Each page of history is ingested together with its cursor in ONE transaction, so a crash re-pulls at
most one page and ingest dedupes by provider message id.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from connectors.base import ConnectorError
from connectors.meta import MetaConnector, history_pending
from switchboard.services.channels import record_channel_error
from switchboard.services.cursors import get_cursor
from switchboard.services.ingest import ingest_items
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache

SCOPE = "conversations"
PROVIDERS = ("messenger", "instagram")


@dataclass
class MetaSyncReport:
    channel_id: int
    rounds: int = 0
    messages_seen: int = 0
    messages_created: int = 0
    complete: bool = False
    error: str | None = None


def sync_meta_channel(engine: Engine, channel_id: int, connectors: ConnectorCache, *, max_rounds: int = 20,
                      page_size: int = 25) -> MetaSyncReport:
    report = MetaSyncReport(channel_id)
    _, connector = connectors.get(channel_id)
    if not isinstance(connector, MetaConnector):
        raise ConnectorError(f"channel {channel_id} is not a Messenger or Instagram channel")
    with UnitOfWork(engine) as uow:
        cursor = get_cursor(uow, channel_id, SCOPE)
    try:
        for _ in range(max_rounds):
            messages, new_cursor = connector.pull_history(cursor, page_size=page_size)
            report.rounds += 1
            report.messages_seen += len(messages)
            with UnitOfWork(engine) as uow:
                result = ingest_items(uow, channel_id=channel_id, items=messages,
                                      cursor=(SCOPE, new_cursor) if new_cursor else None)
            report.messages_created += result.messages_created
            cursor = new_cursor
            if not history_pending(cursor):
                report.complete = True
                break
    except ConnectorError as exc:
        report.error = str(exc)
        with UnitOfWork(engine) as uow:
            record_channel_error(uow, channel_id, f"history pull failed: {exc}")
            uow.commit()
        return report
    with UnitOfWork(engine) as uow:
        record_channel_error(uow, channel_id, None)
        uow.commit()
    return report
