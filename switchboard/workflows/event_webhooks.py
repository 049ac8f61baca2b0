"""Deliver outgoing event webhooks (the ``deliver-event-webhooks`` flow's work).

One round: turn new conversation events into deliveries (one transaction), lease the due ones (one
transaction), POST each signed (outside any transaction) and record the answer (one transaction each).

Signature (docs/api.md shows how to verify it): ``Switchboard-Signature: t=<unix seconds>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256 of ``"<t>." + body`` with the subscription's secret; the event id is
in ``Switchboard-Event-Id`` (stable across retries: receivers drop repeats by it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine

from switchboard.clock import utcnow
from switchboard.services import event_webhooks
from switchboard.types import RunStats
from switchboard.uow import UnitOfWork

TIMEOUT_S = 10.0
USER_AGENT = "Switchboard-Webhooks/1"


@dataclass
class DeliveryStats(RunStats):
    claimed: int = 0
    dispatched: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Switchboard-Signature`` header value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def deliver_once(engine: Engine, secret_key: bytes, client: httpx.Client, *, limit: int = 20) -> DeliveryStats:
    stats = DeliveryStats()
    with UnitOfWork(engine) as uow:
        stats.dispatched = event_webhooks.dispatch_events(uow)
        uow.commit()
    with UnitOfWork(engine) as uow:
        # the lease outlasts POSTing every claimed job to a slow endpoint, so no other worker takes them meanwhile
        jobs = event_webhooks.claim_deliveries(uow, secret_key, limit=limit,
                                               lease_seconds=int(TIMEOUT_S * limit) + 30)
        uow.commit()
    stats.claimed = len(jobs)
    for job in jobs:
        body = json.dumps(job.payload, separators=(",", ":"), ensure_ascii=False).encode()
        now = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Switchboard-Event-Id": job.event_id, "Switchboard-Event-Type": job.event_type,
                   "Switchboard-Signature": signature(job.secret, now, body)}
        started = time.perf_counter()
        code: int | None = None
        text: str | None = None
        error: str | None = None
        try:
            r = client.post(job.url, content=body, headers=headers, timeout=TIMEOUT_S, follow_redirects=False)
            code, text = r.status_code, r.text
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}"[:500]
        with UnitOfWork(engine) as uow:
            status = event_webhooks.record_attempt(uow, job.id, status_code=code, response_body=text, error=error,
                                                   duration_ms=int((time.perf_counter() - started) * 1000),
                                                   now=utcnow())
            uow.commit()
        if status == "DELIVERED":
            stats.delivered += 1
        elif status == "FAILED":
            stats.failed += 1
        else:
            stats.retrying += 1
    return stats
