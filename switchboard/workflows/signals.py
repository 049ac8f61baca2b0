"""Pending read marks and typing indicators → the platform (the ``send-signals`` flow's work).

One short transaction claims a batch (:func:`~switchboard.services.platform_signals.claim_signals`);
each signal is then sent outside any transaction through its channel's ``read receipts and typing``
port, and a failure is recorded on the signal in its own transaction. Signals are best effort: never
retried (a read mark is re-queued by the next customer message, a typing indicator by the next
keystrokes), never shown to the agent; the Channels & health page counts them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from connectors.base import READ_RECEIPTS
from switchboard.services.platform_signals import claim_signals, record_signal_failure
from switchboard.types import RunStats
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache

log = logging.getLogger(__name__)


@dataclass
class SignalStats(RunStats):
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def send_signals_once(engine: Engine, connectors: ConnectorCache, *, limit: int = 100,
                      now: datetime | None = None) -> SignalStats:
    """Claim pending signals and send each one; returns what was sent and what failed."""
    stats = SignalStats()
    with UnitOfWork(engine) as uow:
        jobs = claim_signals(uow, limit=limit, now=now)
        uow.commit()
    stats.claimed = len(jobs)
    for job in jobs:
        try:
            _, marker = connectors.port(job.channel_id, READ_RECEIPTS)
            if job.kind == "read":
                marker.mark_read(job.recipient_id, job.provider_message_id)
            else:
                marker.show_typing(job.recipient_id, job.provider_message_id)
        except Exception as exc:  # kept on the signal for the admin; the agent never sees it
            log.info("signal %s (%s) failed: %s", job.id, job.kind, exc)
            with UnitOfWork(engine) as uow:
                record_signal_failure(uow, job.id, str(exc) or exc.__class__.__name__, now=now)
                uow.commit()
            stats.failed += 1
            stats.errors.append(str(exc))
            continue
        stats.sent += 1
    return stats
