"""Download media of incoming messages promptly (WhatsApp media ids expire after 7 days)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from sqlalchemy import Engine

from connectors.base import ConnectorError, RetryableError
from pipelines.channels import ConnectorCache
from switchboard.services.media import pending_media, record_download
from switchboard.uow import UnitOfWork

log = logging.getLogger(__name__)


@dataclass
class MediaStats:
    stored: int = 0
    refused: int = 0
    retrying: int = 0


def download_media_once(engine: Engine, connectors: ConnectorCache, media_dir: Path, *, limit: int = 20,
                        max_bytes: int = 100 * 1024 * 1024) -> MediaStats:
    stats = MediaStats()
    with UnitOfWork(engine) as uow:
        for item in pending_media(uow, limit=limit):
            _, connector = connectors.get(item.channel_id)
            download = getattr(connector, "download_media", None)
            if download is None:  # platforms whose media comes as URLs (Meta) need no download
                record_download(uow, item.attachment_id, path=None, error="no media download for this platform",
                                error_code="unsupported")
                stats.refused += 1
                continue
            try:
                stored = download(item.provider_media_id, media_dir / str(item.channel_id), max_bytes=max_bytes)
            except RetryableError as exc:
                record_download(uow, item.attachment_id, path=None, error=str(exc), retryable=True)
                stats.retrying += 1
            except ConnectorError as exc:
                record_download(uow, item.attachment_id, path=None, error=str(exc), error_code=exc.code)
                stats.refused += 1
            else:
                record_download(uow, item.attachment_id, path=str(stored.path), sha256=stored.sha256,
                                size_bytes=stored.size_bytes, mime_type=stored.mime_type)
                stats.stored += 1
        uow.commit()
    return stats


@flow(name="download-media", log_prints=True)
def download_media_flow() -> dict[str, int]:
    from dataclasses import asdict

    from pipelines.flows import engine as shared_engine
    from pipelines.flows import recorded
    from switchboard.settings import get_settings

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
