"""History pull for Messenger and Instagram (Conversations API): catches what webhooks missed.

Each page of history is ingested together with its cursor in ONE transaction, so a crash re-pulls at
most one page and ingest dedupes by provider message id.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from connectors.base import HISTORY, ConnectorError
from switchboard.clock import utcnow
from switchboard.services.channels import record_channel_error
from switchboard.services.cursors import get_cursor
from switchboard.services.ingest import ingest_items
from switchboard.services.sync_progress import Progress, ProgressCallback, record_progress
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.progress import notify, report_progress

SCOPE = "conversations"
PROGRESS_JOB = "meta-history-sync"


@dataclass
class MetaSyncReport:
    channel_id: int
    rounds: int = 0
    messages_seen: int = 0
    messages_created: int = 0
    complete: bool = False
    error: str | None = None


def sync_meta_channel(engine: Engine, channel_id: int, connectors: ConnectorCache, *, max_rounds: int = 20,
                      page_size: int = 25, on_progress: ProgressCallback | None = None) -> MetaSyncReport:
    """Pull up to ``max_rounds`` pages of history. After each page its progress (the people whose
    conversations were pulled and the messages seen; the platform gives no totals) is stored with the
    page and handed to ``on_progress``; the run's end reports it finished."""
    report = MetaSyncReport(channel_id)
    _, history = connectors.port(channel_id, HISTORY)  # Unsupported for channels without history
    with UnitOfWork(engine) as uow:
        cursor = get_cursor(uow, channel_id, SCOPE)
    started_at = utcnow()
    people: set[str] = set()

    def progress(*, finished: bool = False) -> Progress:
        return Progress(channel_id, PROGRESS_JOB, started_at, chats_done=len(people),
                        messages_done=report.messages_seen, finished=finished)

    try:
        for _ in range(max_rounds):
            messages, new_cursor = history.pull_history(cursor, page_size=page_size)
            report.rounds += 1
            report.messages_seen += len(messages)
            people.update(m.contact.provider_contact_id for m in messages)
            done = progress()
            with UnitOfWork(engine) as uow:
                result = ingest_items(uow, channel_id=channel_id, items=messages,
                                      cursor=(SCOPE, new_cursor) if new_cursor else None)
                record_progress(uow, done, now=utcnow())
                uow.commit()
            notify(on_progress, done)
            report.messages_created += result.messages_created
            cursor = new_cursor
            if not history.history_pending(cursor):
                report.complete = True
                break
    except ConnectorError as exc:
        report.error = str(exc)
        with UnitOfWork(engine) as uow:
            record_channel_error(uow, channel_id, f"history pull failed: {exc}")
            uow.commit()
        report_progress(engine, on_progress, progress(finished=True))
        return report
    report_progress(engine, on_progress, progress(finished=True))
    with UnitOfWork(engine) as uow:
        record_channel_error(uow, channel_id, None)
        uow.commit()
    return report
