"""Stored webhook deliveries → parsed items → domain ingest (the ``process-webhooks`` flow's work)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from connectors.base import PayloadError
from switchboard.services import webhooks
from switchboard.types import Ignored, ParsedItem, StatusUpdate
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.routing import parse_and_route

log = logging.getLogger(__name__)

UNMATCHED_STATUS_ATTEMPTS = 3  # tries (4 s, 16 s apart) before a status for an unknown message is dropped


@dataclass
class WebhookStats:
    claimed: int = 0
    processed: int = 0
    ignored: int = 0
    rejected: int = 0
    errors: int = 0
    messages_created: int = 0
    statuses_applied: int = 0

    def add(self, other: WebhookStats) -> None:
        for k, v in vars(other).items():
            setattr(self, k, getattr(self, k) + v)


def process_webhooks_once(engine: Engine, connectors: ConnectorCache, *, limit: int = 200,
                          now: datetime | None = None) -> WebhookStats:
    """Process up to ``limit`` stored deliveries in one transaction (a savepoint per delivery).

    Safe to run from several workers at once: deliveries are claimed with SKIP LOCKED, and ingest is
    idempotent by provider message id, so a delivery replayed by the platform adds nothing.
    """
    from switchboard.services.ingest import ingest_items

    stats = WebhookStats()
    with UnitOfWork(engine) as uow:
        events = webhooks.claim_pending(uow, limit=limit)
        stats.claimed = len(events)
        for ev in events:
            if ev.channel_id is None:
                webhooks.finish(uow, ev.id, status="REJECTED", reason="delivery has no channel")
                stats.rejected += 1
                continue
            try:
                routed = parse_and_route(connectors, ev.channel_id, ev.body)  # per channel (WhatsApp numbers)
                items = routed.items
            except PayloadError as exc:
                webhooks.finish(uow, ev.id, status="REJECTED", reason=f"unrecognised payload: {exc}")
                stats.rejected += 1
                continue
            except Exception as exc:
                log.exception("webhook %s: parsing failed", ev.id)
                webhooks.record_attempt_error(uow, ev.id, f"{exc.__class__.__name__}: {exc}")
                stats.errors += 1
                continue
            ignored = [i for i in items if isinstance(i, Ignored)]
            if len(ignored) == len(items):
                reason = "; ".join(sorted({i.reason for i in ignored})) or "empty delivery"
                webhooks.finish(uow, ev.id, status="IGNORED", reason=reason)
                stats.ignored += 1
                continue
            savepoint = uow.session.begin_nested()
            try:
                results = []
                for channel_id, batch in routed.batches.items():
                    if not batch:
                        continue
                    _adopt_reported_sends(uow, channel_id, batch)
                    results.append(ingest_items(uow, channel_id=channel_id, items=batch, now=now))
                savepoint.commit()
            except Exception as exc:
                savepoint.rollback()
                log.exception("webhook %s: ingest failed", ev.id)
                webhooks.record_attempt_error(uow, ev.id, f"{exc.__class__.__name__}: {exc}")
                stats.errors += 1
                continue
            unmatched = [pmid for r in results for pmid in r.unmatched_status_ids]
            if unmatched and ev.attempts + 1 < UNMATCHED_STATUS_ATTEMPTS:
                # A status can overtake our own record of the send (the platform answers the send,
                # then reports "sent" before record_sent committed): try the delivery again shortly.
                webhooks.record_attempt_error(uow, ev.id, f"status for a message not stored yet: "
                                              f"{', '.join(sorted(unmatched))[:200]}; will retry")
                stats.processed += 1
                continue
            notes = sorted({i.reason for i in ignored}) + routed.notes
            if unmatched:
                notes.append(f"status for unknown messages ignored: {', '.join(sorted(unmatched))[:200]}")
            webhooks.finish(uow, ev.id, status="PROCESSED", reason="; ".join(notes) or None)
            stats.processed += 1
            stats.messages_created += sum(r.messages_created for r in results)
            stats.statuses_applied += sum(r.statuses_applied for r in results)
        uow.commit()
    return stats


def _adopt_reported_sends(uow: UnitOfWork, channel_id: int, items: Sequence[ParsedItem]) -> None:
    """Statuses that echo our idempotency key settle sends whose result was never recorded."""
    from switchboard.services.outbox import adopt_reported_send

    for item in items:
        if isinstance(item, StatusUpdate) and item.status != "FAILED":
            key = item.raw.get("biz_opaque_callback_data") if isinstance(item.raw, dict) else None
            if key:
                adopt_reported_send(uow, channel_id, idempotency_key=str(key),
                                    provider_message_id=item.provider_message_id, sent_at=item.occurred_at)
