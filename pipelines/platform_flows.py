"""Prefect flows of the platform workflows: media download, Telegram sync/listeners, Meta history.

Thin wrappers: each resolves the worker's engine and connectors, runs one function of
:mod:`switchboard.workflows` and records the run in ``pipeline_runs``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import Any

from prefect import flow
from sqlalchemy import Engine

from connectors.base import HISTORY, ConnectorError
from connectors.registry import supports
from connectors.telegram import get_telegram_gateway
from pipelines.flows import _logger, long_poll, recorded
from pipelines.flows import engine as shared_engine
from pipelines.progress import ProgressArtifact
from switchboard.errors import InvalidInput
from switchboard.services.channels import list_channels
from switchboard.settings import get_settings
from switchboard.uow import UnitOfWork
from switchboard.workflows.channel_checks import check_credentials_once
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.media import download_media_once
from switchboard.workflows.meta_history import sync_meta_channel
from switchboard.workflows.signals import SignalStats, send_signals_once
from switchboard.workflows.telegram import (
    SyncReport,
    run_listener,
    sync_telegram_channel,
    telegram_channel_credentials,
)
from switchboard.workflows.templates import sync_all_templates

# --- read marks and typing -------------------------------------------------------------------------

@flow(name="send-signals", log_prints=True)
def send_signals_flow(max_seconds: float = 55.0, poll_seconds: float = 0.5) -> dict[str, int]:
    """Send queued read marks and typing indicators (polls every ``poll_seconds`` for ``max_seconds``)."""
    settings = get_settings()
    eng = shared_engine()
    connectors = ConnectorCache(eng, settings.secret_key_bytes())
    try:
        total = recorded("send-signals",
                         lambda: long_poll(SignalStats(), lambda: send_signals_once(eng, connectors), time.sleep,
                                           max_seconds=max_seconds, poll_seconds=poll_seconds),
                         lambda s: {"sent": s.sent, "failed": s.failed, "errors": s.errors[-5:]})
    finally:
        connectors.close()
    return {"sent": total.sent, "failed": total.failed}


# --- media -------------------------------------------------------------------------------------

@flow(name="download-media", log_prints=True)
def download_media_flow() -> dict[str, int]:


    settings = get_settings()
    eng = shared_engine()
    connectors = ConnectorCache(eng, settings.secret_key_bytes())
    try:
        stats = recorded("download-media",
                         lambda: download_media_once(eng, connectors, settings.media_dir, limit=100),
                         lambda s: asdict(s))
    finally:
        connectors.close()
    return asdict(stats)


# --- message templates ---------------------------------------------------------------------------

@flow(name="sync-templates", log_prints=True)
def sync_templates_flow() -> dict[str, Any]:
    """Every WhatsApp channel's template catalogue into Postgres (``switchboard.workflows.templates``)."""
    eng = shared_engine()
    connectors = ConnectorCache(eng, get_settings().secret_key_bytes())
    try:
        stats = recorded("sync-templates", lambda: sync_all_templates(eng, connectors), lambda s: asdict(s))
    finally:
        connectors.close()
    return asdict(stats)


# --- credentials that expire --------------------------------------------------------------------

@flow(name="check-credentials", log_prints=True)
def check_credentials_flow(warn_days: int | None = None) -> dict[str, Any]:
    """When each Meta channel's access token expires (``switchboard.workflows.channel_checks``):
    admins are warned ``warn_days`` before (default ``CREDENTIAL_EXPIRY_WARN_DAYS``)."""
    settings = get_settings()
    eng = shared_engine()
    connectors = ConnectorCache(eng, settings.secret_key_bytes())
    days = settings.credential_expiry_warn_days if warn_days is None else warn_days
    try:
        stats = recorded("check-credentials", lambda: check_credentials_once(eng, connectors, warn_days=days),
                         lambda s: asdict(s))
    finally:
        connectors.close()
    return asdict(stats)


# --- Telegram ----------------------------------------------------------------------------------


def _telegram_channel_ids(engine: Engine) -> list[int]:
    with UnitOfWork(engine) as uow:
        return [c.id for c in list_channels(uow) if c.provider == "telegram" and c.status == "active"]


@flow(name="telegram-sync", log_prints=True)
def telegram_sync_flow(channel_id: int | None = None, max_messages_per_chat: int | None = 5000) -> dict[str, Any]:
    """Sync one Telegram channel, or every active one. Long FloodWaits are reported, not fatal."""

    eng = shared_engine()
    ids = [channel_id] if channel_id is not None else _telegram_channel_ids(eng)
    out: dict[str, Any] = {}
    for cid in ids:
        def run(cid: int = cid) -> SyncReport:
            return sync_telegram_channel(eng, cid, max_messages_per_chat=max_messages_per_chat,
                                         on_progress=ProgressArtifact(f"telegram-sync-{cid}", _logger()))

        try:
            report = recorded(f"telegram-sync:{cid}", run, lambda r: r.summary(), channel_id=cid)
        except (ConnectorError, InvalidInput) as exc:
            out[str(cid)] = {"error": str(exc)}
            print(f"telegram channel {cid}: {exc}")
            continue
        out[str(cid)] = report.summary()
        print(f"telegram channel {cid}: {report.messages_created} new messages in {report.chats_fetched} chats"
              + (f"; FloodWait, retry in {report.rate_limited_for:g} s" if report.rate_limited_for else ""))
    return out


@flow(name="telegram-listener", log_prints=True)
def telegram_listener_flow(channel_id: int, max_seconds: float = 300.0) -> dict[str, Any]:
    """Listen for live events of one Telegram channel for ``max_seconds`` (schedule it back to back)."""

    eng = shared_engine()
    with UnitOfWork(eng) as uow:
        creds = telegram_channel_credentials(uow, channel_id, get_settings().secret_key_bytes())
    gateway = get_telegram_gateway(creds)
    try:
        stats = run_listener(eng, channel_id, gateway, max_seconds=max_seconds)
    finally:
        gateway.close()
    return asdict(stats)


@flow(name="telegram-listeners", log_prints=True)
def telegram_listeners_flow(max_seconds: float = 290.0) -> dict[str, Any]:
    """Live events of every active Telegram channel, one listener thread each, for ``max_seconds``."""


    eng = shared_engine()
    key = get_settings().secret_key_bytes()
    results: dict[str, Any] = {}

    def listen(cid: int) -> None:
        try:
            with UnitOfWork(eng) as uow:
                creds = telegram_channel_credentials(uow, cid, key)
            gateway = get_telegram_gateway(creds)
            try:
                results[str(cid)] = asdict(run_listener(eng, cid, gateway, max_seconds=max_seconds))
            finally:
                gateway.close()
        except (ConnectorError, InvalidInput) as exc:
            results[str(cid)] = {"error": str(exc)}

    def run() -> dict[str, Any]:
        threads = [threading.Thread(target=listen, args=(cid,), daemon=True) for cid in _telegram_channel_ids(eng)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max_seconds + 30)
        return results

    return recorded("telegram-listeners", run, lambda r: r)


# --- Messenger / Instagram history ------------------------------------------------------------

@flow(name="meta-history-sync", log_prints=True)
def meta_history_flow(max_rounds: int = 20) -> dict[str, Any]:
    """Pull Messenger/Instagram history for every active channel of those providers."""


    eng = shared_engine()
    connectors = ConnectorCache(eng, get_settings().secret_key_bytes())
    with UnitOfWork(eng) as uow:
        ids = [c.id for c in list_channels(uow) if supports(c.provider, HISTORY) and c.status == "active"]

    def run() -> dict[str, Any]:
        return {str(cid): asdict(sync_meta_channel(eng, cid, connectors, max_rounds=max_rounds,
                                                   on_progress=ProgressArtifact(f"meta-history-{cid}", _logger())))
                for cid in ids}

    try:
        return recorded("meta-history-sync", run, lambda r: r)
    finally:
        connectors.close()
