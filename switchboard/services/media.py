"""Attachments whose media still lives on the platform (WhatsApp media ids expire after 7 days;
Telegram media is fetched through its message)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, func, or_, select, update

from switchboard.clock import utcnow
from switchboard.db.schema import Attachment, Channel, Message
from switchboard.errors import NotFound
from switchboard.policy import require_view
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
MAX_TRIES = 5


@dataclass(frozen=True, slots=True)
class PendingMedia:
    attachment_id: int
    channel_id: int
    provider: str
    kind: str
    provider_media_id: str
    mime_type: str | None
    tries: int
    provider_message_id: str | None = None  # Telegram downloads by message: "<chat id>:<message id>"
    inline: str | None = None  # base64 content that came inside the webhook (email attachments)


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: str
    mime_type: str | None
    file_name: str | None
    kind: str


def claim_media(uow: UnitOfWork, *, limit: int, lease_seconds: float, now: datetime | None = None
                ) -> list[PendingMedia]:
    """Lease up to ``limit`` media attachments of active channels still to download (not given up on,
    not waiting for a platform's retry-after, not leased to another worker), oldest first, SKIP LOCKED. The caller
    commits at once and downloads outside the transaction; :func:`record_download` or
    :func:`release_media` ends the lease (a crashed worker's lease expires)."""
    now = now or utcnow()
    tries = func.coalesce(Attachment.data["download_tries"].as_integer(), 0)
    retry_at = Attachment.data["download_retry_at"].as_string()
    rows = uow.session.execute(
        select(Attachment.id, Message.channel_id, Channel.provider, Attachment.kind, Attachment.provider_media_id,
               Attachment.mime_type, tries.label("tries"), Message.provider_message_id,
               Attachment.data["content_base64"].as_string().label("inline"))
        .join(Message, Message.id == Attachment.message_id)
        .join(Channel, Channel.id == Message.channel_id)
        .where(Attachment.local_path.is_(None), Attachment.provider_media_id.is_not(None),
               Attachment.kind.in_(MEDIA_KINDS), tries < MAX_TRIES,
               Channel.status == "active",  # paused, refused or removed channels' media wait
               Attachment.data["download_error_code"].as_string().is_(None),
               or_(retry_at.is_(None), retry_at.cast(DateTime(timezone=True)) <= now),
               or_(Attachment.download_claimed_until.is_(None), Attachment.download_claimed_until <= now))
        .order_by(Attachment.id)
        .limit(limit)
        .with_for_update(of=Attachment, skip_locked=True)
    ).all()
    if rows:
        uow.session.execute(update(Attachment).where(Attachment.id.in_([r.id for r in rows]))
                            .values(download_claimed_until=now + timedelta(seconds=lease_seconds)))
    return [PendingMedia(r.id, r.channel_id, r.provider, r.kind, r.provider_media_id, r.mime_type, r.tries,
                         r.provider_message_id, r.inline)
            for r in rows]


def release_media(uow: UnitOfWork, attachment_id: int) -> None:
    """End a download's lease without an outcome (the channel's credentials were refused: retry later)."""
    uow.session.execute(update(Attachment).where(Attachment.id == attachment_id).values(download_claimed_until=None))


def record_download(uow: UnitOfWork, attachment_id: int, *, path: str | None, sha256: str | None = None,
                    size_bytes: int | None = None, mime_type: str | None = None, error: str | None = None,
                    error_code: str | None = None, retryable: bool = False, retry_at: datetime | None = None,
                    count_try: bool = True) -> None:
    """Keep the stored file, or the reason it was refused (too large, type not allowed) / will be retried.

    A retryable failure counts one of MAX_TRIES unless ``count_try=False`` (a platform rate limit is not
    the media's fault); ``retry_at`` keeps it out of :func:`claim_media` until then (a platform's
    retry-after, e.g. a Telegram FloodWait). Ends the download's lease. Does not commit."""
    att = uow.session.get(Attachment, attachment_id)
    if att is None:
        raise NotFound(f"attachment {attachment_id} does not exist")
    data: dict[str, Any] = dict(att.data or {})
    values: dict[str, Any] = {"download_claimed_until": None}
    if path is not None or not retryable:
        data.pop("content_base64", None)  # an inline file (email) is kept once: as the file, or refused
    if path is not None:
        values.update(local_path=path, sha256=sha256, size_bytes=size_bytes)
        if mime_type and not att.mime_type:
            values["mime_type"] = mime_type
        data.pop("download_error", None)
        data.pop("download_retry_at", None)
    else:
        data["download_error"] = error
        if retryable:
            if count_try:
                data["download_tries"] = int(data.get("download_tries") or 0) + 1
            if retry_at is not None:
                data["download_retry_at"] = retry_at.isoformat()
            else:
                data.pop("download_retry_at", None)
        else:
            data["download_error_code"] = error_code or "refused"
    values["data"] = data
    uow.session.execute(update(Attachment).where(Attachment.id == attachment_id).values(**values))


def attachment_file(uow: UnitOfWork, actor: Actor, attachment_id: int) -> StoredFile:
    """A downloaded attachment's file, for someone who may view its channel."""
    row = uow.session.execute(
        select(Attachment.local_path, Attachment.mime_type, Attachment.file_name, Attachment.kind,
               Message.channel_id, Message.organization_id)
        .join(Message, Message.id == Attachment.message_id).where(Attachment.id == attachment_id)
    ).first()
    if row is None or row.organization_id != actor.organization_id:
        raise NotFound(f"attachment {attachment_id} not found")
    require_view(uow, actor, row.channel_id)
    if not row.local_path:
        raise NotFound("this attachment has not been downloaded from the platform yet")
    return StoredFile(row.local_path, row.mime_type, row.file_name, row.kind)
