"""A history sync's progress in Prefect: a progress artifact per channel run and a log line per batch.

The sync workflows call their ``on_progress`` callback after each batch (they know nothing of
Prefect); :class:`ProgressArtifact` is that callback in the flows.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from switchboard.services.sync_progress import Progress


class ProgressArtifact:
    """Create the run's progress artifact on the first report, update it after; log every report."""

    def __init__(self, key: str, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        self.key = re.sub(r"[^a-z0-9-]+", "-", key.lower())  # artifact keys: lowercase, digits, dashes
        self.logger = logger
        self.artifact_id: UUID | None = None

    def __call__(self, progress: Progress) -> None:
        percent = round(100 * (progress.fraction() or 0.0), 1)
        description = f"channel {progress.channel_id}: {progress.sentence()}"
        self.logger.info("%s: %s", self.key, description)
        if self.artifact_id is None:
            # (sync_compatible: called from a synchronous flow, it returns the id, not a coroutine)
            self.artifact_id = cast(UUID, create_progress_artifact(percent, key=self.key, description=description))
        else:
            update_progress_artifact(self.artifact_id, percent, description=description)
