"""Progress of long work: how far a channel's history sync got, batch by batch (issue 14).

The sync workflows (:mod:`switchboard.workflows.telegram`, :mod:`switchboard.workflows.meta_history`)
build a :class:`Progress` after each batch, store it with the batch (:func:`record_progress`, in the
batch's own transaction) and hand it to their ``on_progress`` callback (the Prefect flow turns it into
a progress artifact and a log line; the workflows stay Prefect-free). Channels & health shows the
organization's rows (:func:`progress_overview`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from switchboard.db.schema import Channel, SyncProgress
from switchboard.policy import Action, require
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

JOB_LABELS = {"telegram-sync": "Telegram chats and history", "meta-history-sync": "Messenger/Instagram history"}


@dataclass(frozen=True, slots=True)
class Progress:
    """One sync's progress: chats and messages done, of how many where known (None: not known)."""

    channel_id: int
    job: str  # "telegram-sync" | "meta-history-sync"
    started_at: datetime
    chats_done: int = 0
    chats_total: int | None = None
    messages_done: int = 0
    messages_total: int | None = None
    finished: bool = False

    def fraction(self) -> float | None:
        """Done / total, from messages when their total is known, else from chats; None if neither is."""
        for done, total in ((self.messages_done, self.messages_total), (self.chats_done, self.chats_total)):
            if total:
                return min(1.0, done / total)
        return 1.0 if self.finished else None

    def sentence(self) -> str:
        def part(done: int, total: int | None, what: str) -> str:
            return f"{done:,} of {total:,} {what}" if total is not None else f"{done:,} {what}"

        state = "finished" if self.finished else "running"
        return (f"{part(self.chats_done, self.chats_total, 'chats')}, "
                f"{part(self.messages_done, self.messages_total, 'messages')} ({state})")


ProgressCallback = Callable[[Progress], None]


def record_progress(uow: UnitOfWork, progress: Progress, *, now: datetime) -> None:
    """Store a sync's progress (a workflow step, in the batch's transaction; the step commits)."""
    values = {"chats_done": progress.chats_done, "chats_total": progress.chats_total,
              "messages_done": progress.messages_done, "messages_total": progress.messages_total,
              "started_at": progress.started_at, "updated_at": now,
              "finished_at": now if progress.finished else None}
    uow.session.execute(insert(SyncProgress).values(channel_id=progress.channel_id, job=progress.job, **values)
                        .on_conflict_do_update(index_elements=["channel_id", "job"], set_=values))


@dataclass(frozen=True, slots=True)
class ProgressView:
    channel_id: int
    channel_name: str
    job: str
    label: str
    progress: Progress
    updated_at: datetime
    finished_at: datetime | None


def progress_overview(uow: UnitOfWork, actor: Actor) -> list[ProgressView]:
    """Admins: the latest progress of every history sync of the organization's channels."""
    me = require(uow, actor, Action.VIEW_OPERATIONS)
    rows = uow.session.execute(
        select(SyncProgress, Channel.name).join(Channel, Channel.id == SyncProgress.channel_id)
        .where(Channel.organization_id == me.organization_id, Channel.status != "removed")
        .order_by(Channel.name, SyncProgress.job)).all()
    return [ProgressView(p.channel_id, name, p.job, JOB_LABELS.get(p.job, p.job),
                         Progress(p.channel_id, p.job, p.started_at, p.chats_done, p.chats_total, p.messages_done,
                                  p.messages_total, finished=p.finished_at is not None),
                         p.updated_at, p.finished_at)
            for p, name in rows]
