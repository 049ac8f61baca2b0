"""Stored webhook deliveries → parsed items → domain ingest (the ``process-webhooks`` flow's work).

Batched, so that a backlog drains at thousands of deliveries per second: one unit of work claims up
to ``limit`` deliveries (SKIP LOCKED: concurrent workers get disjoint sets), parses each with its
channel's connector, merges their items per channel and ingests each channel's items at once (a
handful of set-based statements per batch, whatever its size), then records every delivery's outcome
in one statement and commits.

Each delivery keeps its own outcome. One that cannot be parsed is marked on its own. When a batch
fails to ingest, it is split in halves and each half is tried again (bisection, a savepoint per
try), until the bad deliveries stand alone: they are marked with their error (retried later with
backoff), and all the others are ingested. A deadlock with another worker retries the same group.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from connectors.base import PayloadError
from switchboard.services import webhooks
from switchboard.services.ingest import IngestResult, ingest_items
from switchboard.types import Ignored, ParsedItem, RunStats, StatusUpdate
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.routing import parse_and_route

log = logging.getLogger(__name__)

UNMATCHED_STATUS_ATTEMPTS = 3  # tries (4 s, 16 s apart) before a status for an unknown message is dropped
BATCH_LIMIT = 500  # deliveries claimed per transaction
_TRANSIENT = {"40P01", "40001"}  # deadlock detected, serialization failure: try the same group again
_TRANSIENT_TRIES = 3


@dataclass
class WebhookStats(RunStats):
    claimed: int = 0
    processed: int = 0
    ignored: int = 0
    rejected: int = 0
    errors: int = 0
    messages_created: int = 0
    statuses_applied: int = 0


@dataclass
class _Delivery:
    """A parsed delivery waiting to be ingested: its items per channel and notes for its reason."""

    event: webhooks.PendingEvent
    batches: dict[int, list[ParsedItem]]
    notes: list[str] = field(default_factory=list)

    def items(self) -> Iterator[ParsedItem]:
        for batch in self.batches.values():
            yield from batch


def freeze_startup_objects() -> None:
    """Call once when a worker process has started (imports done, before its loop): every object alive
    then (modules, classes, caches) is moved out of the cyclic garbage collector's sight, so its full
    collections no longer walk them again and again. Those walks were 12-15 % of the worker's CPU per
    delivery (about 30 µs: measured with ``gc.callbacks`` while draining a backlog); objects made later
    are collected as before."""
    gc.collect()
    gc.freeze()


def process_webhooks_once(engine: Engine, connectors: ConnectorCache, *, limit: int = BATCH_LIMIT,
                          now: datetime | None = None) -> WebhookStats:
    """Process up to ``limit`` stored deliveries in one transaction (see the module docstring).

    Safe to run from several workers at once: deliveries are claimed with SKIP LOCKED, and ingest is
    idempotent by provider message id, so a delivery replayed by the platform adds nothing.
    """
    stats = WebhookStats()
    with UnitOfWork(engine) as uow:
        events = webhooks.claim_pending(uow, limit=limit)
        stats.claimed = len(events)
        outcomes: list[webhooks.Outcome] = []
        parsed = [d for d in (_parse(connectors, ev, outcomes, stats) for ev in events) if d is not None]
        _ingest_isolating(uow, parsed, now, outcomes, stats)
        webhooks.record_outcomes(uow, outcomes)
        uow.commit()
    return stats


def _parse(connectors: ConnectorCache, ev: webhooks.PendingEvent, outcomes: list[webhooks.Outcome],
           stats: WebhookStats) -> _Delivery | None:
    """The delivery's items per channel, or None when its outcome is already known (then recorded)."""
    if ev.channel_id is None:
        outcomes.append(webhooks.Outcome(ev.id, "REJECTED", "delivery has no channel"))
        stats.rejected += 1
        return None
    try:
        routed = parse_and_route(connectors, ev.channel_id, ev.body)  # per channel (WhatsApp numbers)
    except PayloadError as exc:
        outcomes.append(webhooks.Outcome(ev.id, "REJECTED", f"unrecognised payload: {exc}"))
        stats.rejected += 1
        return None
    except Exception as exc:
        log.exception("webhook %s: parsing failed", ev.id)
        outcomes.append(webhooks.Outcome(ev.id, None, f"{exc.__class__.__name__}: {exc}"))
        stats.errors += 1
        return None
    items = routed.items
    ignored = [i for i in items if isinstance(i, Ignored)]
    if len(ignored) == len(items):
        outcomes.append(webhooks.Outcome(ev.id, "IGNORED", "; ".join(sorted({i.reason for i in ignored}))
                                         or "empty delivery"))
        stats.ignored += 1
        return None
    return _Delivery(ev, {ch: batch for ch, batch in routed.batches.items() if batch}, routed.notes)


def _ingest_isolating(uow: UnitOfWork, group: Sequence[_Delivery], now: datetime | None,
                      outcomes: list[webhooks.Outcome], stats: WebhookStats) -> None:
    """Ingest ``group`` at once; if that fails, bisect it until the failing deliveries stand alone."""
    if not group:
        return
    for attempt in range(1, _TRANSIENT_TRIES + 1):
        savepoint = uow.session.begin_nested()
        try:
            results = _ingest(uow, group, now)
            savepoint.commit()
            break
        except Exception as exc:
            savepoint.rollback()
            if _transient(exc) and attempt < _TRANSIENT_TRIES:
                continue
            if len(group) > 1:
                half = len(group) // 2
                _ingest_isolating(uow, group[:half], now, outcomes, stats)
                _ingest_isolating(uow, group[half:], now, outcomes, stats)
                return
            log.exception("webhook %s: ingest failed", group[0].event.id)
            outcomes.append(webhooks.Outcome(group[0].event.id, None, f"{exc.__class__.__name__}: {exc}"))
            stats.errors += 1
            return
    unmatched = {(ch, pmid) for ch, r in results.items() for pmid in r.unmatched_status_ids}
    for d in group:
        outcomes.append(_settled(d, unmatched))
    stats.processed += len(group)
    stats.messages_created += sum(r.messages_created for r in results.values())
    stats.statuses_applied += sum(r.statuses_applied for r in results.values())


def _transient(exc: Exception) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _TRANSIENT


def _ingest(uow: UnitOfWork, group: Sequence[_Delivery], now: datetime | None) -> dict[int, IngestResult]:
    """One ingest per channel of the items of all the deliveries of ``group`` (channels in id order)."""
    per_channel: dict[int, list[ParsedItem]] = {}
    for d in group:
        for channel_id, batch in d.batches.items():
            per_channel.setdefault(channel_id, []).extend(batch)
    results = {}
    for channel_id in sorted(per_channel):
        items = per_channel[channel_id]
        _adopt_reported_sends(uow, channel_id, items)
        results[channel_id] = ingest_items(uow, channel_id=channel_id, items=items, now=now)
    return results


def _settled(d: _Delivery, unmatched: set[tuple[int, str]]) -> webhooks.Outcome:
    """The outcome of an ingested delivery: PROCESSED with its notes, or tried again shortly when it
    holds a status for a message not stored yet."""
    mine = sorted({i.provider_message_id for ch, batch in d.batches.items() for i in batch
                   if isinstance(i, StatusUpdate) and (ch, i.provider_message_id) in unmatched})
    if mine and d.event.attempts + 1 < UNMATCHED_STATUS_ATTEMPTS:
        # A status can overtake our own record of the send (the platform answers the send, then
        # reports "sent" before record_sent committed): try the delivery again shortly.
        return webhooks.Outcome(d.event.id, None, f"status for a message not stored yet: "
                                f"{', '.join(mine)[:200]}; will retry")
    notes = sorted({i.reason for i in d.items() if isinstance(i, Ignored)}) + d.notes
    if mine:
        notes.append(f"status for unknown messages ignored: {', '.join(mine)[:200]}")
    return webhooks.Outcome(d.event.id, "PROCESSED", "; ".join(notes) or None)


def _adopt_reported_sends(uow: UnitOfWork, channel_id: int, items: Sequence[ParsedItem]) -> None:
    """Statuses that echo our idempotency key settle sends whose result was never recorded or whose
    outcome is unknown (one read for the whole batch finds the few sends still PENDING or UNKNOWN); a
    ``failed`` report settles them too (the platform took the message: its failure is then applied)."""
    from switchboard.services.outbox import adopt_reported_send

    keyed: dict[str, StatusUpdate] = {}
    for item in items:
        if isinstance(item, StatusUpdate) and isinstance(item.raw, dict):
            key = item.raw.get("biz_opaque_callback_data")
            if key:
                keyed.setdefault(str(key), item)
    for key in sorted(webhooks.pending_send_keys(uow, channel_id, list(keyed))):
        item = keyed[key]
        adopt_reported_send(uow, channel_id, idempotency_key=key, provider_message_id=item.provider_message_id,
                            sent_at=item.occurred_at)
