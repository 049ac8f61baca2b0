"""Prefect flows: thin wrappers that run the plain functions of :mod:`switchboard.workflows`.

`process-webhooks` and `send-outbox` are *long-poll* runs: each scheduled run works for up to
``max_seconds`` and wakes at once on LISTEN/NOTIFY (or polls every ``poll_seconds``), so a message
reaches the inbox in well under a second while Prefect still owns scheduling, retries and the
run history. Every run is also recorded in `pipeline_runs` for `GET /health` and the admin view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from prefect import flow, get_run_logger
from sqlalchemy import Engine

from switchboard.db.engine import make_engine
from switchboard.settings import get_settings
from switchboard.workflows import warehouse as warehouse_jobs
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import WebhookStats, process_webhooks_once
from switchboard.workflows.maintenance import maintain_once
from switchboard.workflows.sending import OutboxStats, send_outbox_once

log = logging.getLogger(__name__)
T = TypeVar("T")

_engines: dict[str, Engine] = {}


def engine() -> Engine:
    """One engine per database URL for this worker process (settings may point elsewhere in tests)."""
    from switchboard.db.engine import database_url

    url = database_url(get_settings())
    if url not in _engines:
        _engines[url] = make_engine(url, pool_size=4, max_overflow=4)
    return _engines[url]


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except Exception:
        return log


def recorded(name: str, fn: Callable[[], T], summary: Callable[[T], dict[str, Any]], *,
             channel_id: int | None = None) -> T:
    """Run ``fn`` and record the run (ok/failed, summary, error) in pipeline_runs; a run about one
    channel belongs to its organization (its admins see its details)."""
    return warehouse_jobs.recorded(engine(), name, fn, summary, channel_id=channel_id)


class Batch(Protocol):
    claimed: int

    def add(self, other: Any) -> None: ...


B = TypeVar("B", bound=Batch)


def long_poll(total: B, once: Callable[[], B], wait: Callable[[float], object], *, max_seconds: float,
              poll_seconds: float) -> B:
    """Run ``once`` again and again for ``max_seconds`` (at least once), adding its stats to ``total``;
    when a round claimed nothing, ``wait`` (a notification or a sleep) up to ``poll_seconds``."""
    deadline = time.monotonic() + max_seconds
    while True:
        stats = once()
        total.add(stats)
        if time.monotonic() >= deadline:
            return total
        if stats.claimed == 0:
            wait(min(poll_seconds, max(0.0, deadline - time.monotonic())))


class NotifyListener:
    """A dedicated autocommit connection LISTENing on one channel (never a pooled connection: a
    pooled one left in autocommit would break the next unit of work's transaction and locks)."""

    def __init__(self, eng: Engine, channel: str) -> None:
        import psycopg

        conninfo = eng.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.conn.execute(f"listen {channel}")  # identifier from our own constants, not user input

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True if a notification arrived."""
        got = False
        # Exhaust the generator (stop_after=1) rather than break out of it: a suspended notifies()
        # generator keeps the connection's lock and the next call on it would hang forever.
        for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            got = True
        return got

    def close(self) -> None:
        with suppress(Exception):
            self.conn.close()

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@flow(name="process-webhooks", log_prints=True)
def process_webhooks_flow(max_seconds: float = 50.0, poll_seconds: float = 1.0) -> dict[str, int]:
    """Turn stored webhook deliveries into conversations and messages."""
    from switchboard.http.receiver import NOTIFY_CHANNEL

    settings = get_settings()
    eng = engine()
    connectors = ConnectorCache(eng, settings.secret_key_bytes())

    def work() -> WebhookStats:
        with NotifyListener(eng, NOTIFY_CHANNEL) as listener:
            return long_poll(WebhookStats(), lambda: process_webhooks_once(eng, connectors), listener.wait,
                             max_seconds=max_seconds, poll_seconds=poll_seconds)

    try:
        total = recorded("process-webhooks", work, lambda s: asdict(s))
    finally:
        connectors.close()
    _logger().info("process-webhooks: %s", asdict(total))
    return asdict(total)


@flow(name="send-outbox", log_prints=True)
def send_outbox_flow(max_seconds: float = 50.0, poll_seconds: float = 0.5) -> dict[str, Any]:
    """Send PENDING outbound messages with per-channel rate limits, retries and dead letters."""
    settings = get_settings()
    eng = engine()
    connectors = ConnectorCache(eng, settings.secret_key_bytes())

    def work() -> OutboxStats:
        return long_poll(OutboxStats(),
                         lambda: send_outbox_once(eng, connectors, max_attempts=settings.outbox_max_attempts),
                         time.sleep, max_seconds=max_seconds, poll_seconds=poll_seconds)

    try:
        total = recorded("send-outbox", work,
                         lambda s: {"claimed": s.claimed, "sent": s.sent, "retrying": s.retrying,
                                    "failed": s.failed, "unknown": s.unknown, "stale": s.stale,
                                    "errors": s.errors[-5:]})
    finally:
        connectors.close()
    _logger().info("send-outbox: sent=%s retrying=%s failed=%s", total.sent, total.retrying, total.failed)
    return {"sent": total.sent, "retrying": total.retrying, "failed": total.failed}


@flow(name="deliver-event-webhooks", log_prints=True)
def deliver_event_webhooks_flow(max_seconds: float = 50.0, poll_seconds: float = 2.0) -> dict[str, Any]:
    """Outgoing event webhooks: new events become deliveries, due deliveries are POSTed signed."""
    import httpx

    from switchboard.workflows.event_webhooks import DeliveryStats, deliver_once

    key = get_settings().secret_key_bytes()
    eng = engine()
    with httpx.Client() as client:
        total = recorded("deliver-event-webhooks",
                         lambda: long_poll(DeliveryStats(), lambda: deliver_once(eng, key, client), time.sleep,
                                           max_seconds=max_seconds, poll_seconds=poll_seconds),
                         asdict)
    _logger().info("deliver-event-webhooks: %s", asdict(total))
    return asdict(total)


@flow(name="maintain-inbox", log_prints=True)
def maintain_flow() -> dict[str, Any]:
    """Presence sweep (release work of disconnected agents), auto-assignment, purges, and the merge of
    the message search index's pending list (``maintain_once``)."""
    settings = get_settings()
    result = recorded(
        "maintain-inbox",
        lambda: maintain_once(engine(), away_after_s=settings.presence_away_seconds,
                              offline_grace_s=settings.presence_offline_grace_seconds),
        lambda r: r,
    )
    _logger().info("maintain-inbox: %s", result)
    return result


def _warehouse(name: str, fn: Callable[[], T], summary: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """A recorded warehouse run, skipped (not failed) while another build or maintenance holds the lock."""
    from warehouse.build import BuildError

    try:
        result = summary(recorded(name, fn, summary))
    except BuildError as exc:
        if warehouse_jobs.BUSY in str(exc):
            _logger().info("%s skipped: %s", name, exc)
            return {"skipped": str(exc)}
        raise
    _logger().info("%s: %s", name, result)
    return result


@flow(name="warehouse-build", log_prints=True)
def warehouse_build_flow(full: bool = False) -> dict[str, Any]:
    """Incremental (or full) warehouse build; skipped if another build holds the lock."""
    from switchboard.db.engine import database_url
    from warehouse.build import build

    settings = get_settings()
    return _warehouse("warehouse-build",
                      lambda: build(database_url(settings), settings.warehouse_file, full=full,
                                    data_path=settings.warehouse_data_path, nice=settings.warehouse_build_nice),
                      warehouse_jobs.build_summary)


@flow(name="warehouse-maintain", log_prints=True)
def warehouse_maintain_flow() -> dict[str, Any]:
    """Expire old warehouse snapshots, merge small files, delete unread files; skipped during a build."""
    from switchboard.db.engine import database_url
    from warehouse.build import maintain

    settings = get_settings()
    keep = timedelta(minutes=settings.warehouse_snapshot_retention_minutes)
    return _warehouse("warehouse-maintain",
                      lambda: maintain(database_url(settings), settings.warehouse_file, keep=keep,
                                       nice=settings.warehouse_build_nice),
                      lambda t: {k: round(v, 3) for k, v in t.items()})


@flow(name="cleanup", log_prints=True)
def cleanup_flow(media_grace_hours: float = 24.0) -> dict[str, Any]:
    """Retention: expired sessions and invites, old deliveries, run history and signals, unused media."""
    from switchboard.workflows.retention import cleanup_once

    settings = get_settings()
    result = recorded("cleanup", lambda: cleanup_once(engine(), settings.media_dir,
                                                      media_grace_hours=media_grace_hours), lambda r: r)
    _logger().info("cleanup: %s", result)
    return result
