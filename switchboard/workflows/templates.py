"""Sync the message template catalogue of every channel whose platform lists templates (WhatsApp and
the sandbox) into Postgres: the ``sync-templates`` flow's work, and ``switchboard channel
sync-templates KEY`` on demand.

Each channel is one step: the catalogue is fetched through the connector's ``list_templates()`` (no
transaction open meanwhile), then stored by :func:`switchboard.services.templates.sync_templates` in
one transaction as the organization's system actor. A channel that fails (no ``waba_id``, expired
token, the platform down) is counted and recorded as the channel's error; the others go on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from connectors.base import TEMPLATES, AuthenticationError, ConnectorError
from connectors.registry import supports
from switchboard.clock import utcnow
from switchboard.services.channels import credentials_refused, list_channels
from switchboard.services.templates import SyncResult, authorize_template_sync, sync_templates
from switchboard.types import Actor, RunStats
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache

log = logging.getLogger(__name__)


@dataclass
class TemplateSyncStats(RunStats):
    """Channels synced and failed; ``changes`` counts templates inserted, updated and removed."""

    channels: int = 0
    failed: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def sync_channel_templates(engine: Engine, connectors: ConnectorCache, channel_id: int, *,
                           now: datetime | None = None, actor: Actor | None = None) -> SyncResult:
    """Fetch one channel's catalogue and store it (one transaction); raises the connector's error.
    ``actor``: a person asked for it (the Sync templates button): checked before the platform is asked,
    and the store runs as them; otherwise the channel's organization's system actor."""
    if actor is not None:
        with UnitOfWork(engine) as uow:
            authorize_template_sync(uow, actor, channel_id)
    channel, lister = connectors.port(channel_id, TEMPLATES)
    templates = [dataclasses.asdict(t) for t in lister.list_templates()]
    with UnitOfWork(engine) as uow:
        result = sync_templates(uow, actor or Actor.system(channel.organization_id), channel_id, templates,
                                now=now)
        uow.commit()
    return result


def sync_all_templates(engine: Engine, connectors: ConnectorCache, *, now: datetime | None = None
                       ) -> TemplateSyncStats:
    """Every active channel with the templates capability, one step each."""
    stats = TemplateSyncStats()
    with UnitOfWork(engine) as uow:
        channels = [c for c in list_channels(uow) if c.status != "paused" and supports(c.provider, TEMPLATES)]
    for channel in channels:
        stats.channels += 1
        try:
            result = sync_channel_templates(engine, connectors, channel.id, now=now)
        except ConnectorError as exc:
            stats.failed += 1
            stats.errors.append(f"{channel.key}: {exc}")
            if isinstance(exc, AuthenticationError):
                with UnitOfWork(engine) as uow:
                    credentials_refused(uow, channel.id, f"authentication failed: {exc}", now=now or utcnow())
                    uow.commit()
            continue
        stats.changes.update(inserted=result.inserted, updated=result.updated, removed=result.removed)
    return stats
