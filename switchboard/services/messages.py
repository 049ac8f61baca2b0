"""What the inbox shows of messages: the message and attachment views, read in one query each.

Inbound and outbound messages share these views (the thread mixes them); the outbox and the inbox
read through :func:`message_views`. No access checks here: callers check the conversation first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from switchboard.db.schema import Attachment, Message, User
from switchboard.domain.conversation import MessageStatus
from switchboard.errors import NotFound
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class AttachmentView:
    id: int
    kind: str
    mime_type: str | None
    file_name: str | None
    url: str | None
    size_bytes: int | None
    local_path: str | None
    download_error: str | None = None  # why the media was refused (too large, type not allowed, gone)


# What a person is shown for each delivery status of a message (the thread, the outbox).
STATUS_LABELS: dict[str, str] = {
    MessageStatus.PENDING: "sending",
    MessageStatus.SENT: "sent",
    MessageStatus.DELIVERED: "delivered",
    MessageStatus.READ: "read",
    MessageStatus.FAILED: "failed",
    MessageStatus.UNKNOWN: "may have been sent",
}


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.lower())


@dataclass(frozen=True, slots=True)
class MessageView:
    id: int
    conversation_id: int
    direction: str
    author_kind: str
    author_user_id: int | None
    author_name: str | None
    body: str | None
    content_type: str
    status: str
    error_code: str | None
    error_message: str | None
    is_edited: bool
    is_deleted: bool
    sent_at: datetime
    delivered_at: datetime | None
    read_at: datetime | None
    attachments: tuple[AttachmentView, ...] = ()
    provider_message_id: str | None = None
    is_dead_letter: bool = False
    attempts: int = 0

    @property
    def status_label(self) -> str:
        """``sending``, ``sent``, ``delivered``, ``read``, ``failed`` or ``may have been sent``."""
        return status_label(self.status)


_MSG_COLS = (
    Message.id, Message.conversation_id, Message.direction, Message.author_kind, Message.author_user_id,
    User.name.label("author_name"), Message.body, Message.content_type, Message.status, Message.error_code,
    Message.error_message, Message.is_edited, Message.is_deleted, Message.sent_at, Message.delivered_at,
    Message.read_at, Message.provider_message_id, Message.is_dead_letter, Message.attempts,
)


def _download_refusal(data: dict[str, Any] | None) -> str | None:
    """Why a media download was given up on: refused, or out of tries (retries under way are not)."""
    from switchboard.services.media import MAX_TRIES

    if not data:
        return None
    if data.get("download_error_code"):
        return str(data.get("download_error") or data["download_error_code"])
    if int(data.get("download_tries") or 0) >= MAX_TRIES:
        return f"gave up after {MAX_TRIES} tries: {data.get('download_error')}"
    return None


def message_views(uow: UnitOfWork, where: Any, order: Sequence[Any] = (), limit: int | None = None
                  ) -> list[MessageView]:
    """Messages matching ``where`` with their authors and attachments (two queries)."""
    stmt = select(*_MSG_COLS).outerjoin(User, User.id == Message.author_user_id).where(where)
    if order:
        stmt = stmt.order_by(*order)
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = uow.session.execute(stmt).all()
    atts: dict[int, list[AttachmentView]] = {}
    if rows:
        for a in uow.session.execute(
            select(Attachment).where(Attachment.message_id.in_([r.id for r in rows])).order_by(Attachment.id)
        ).scalars():
            atts.setdefault(a.message_id, []).append(
                AttachmentView(a.id, a.kind, a.mime_type, a.file_name, a.url, a.size_bytes, a.local_path,
                               _download_refusal(a.data)))
    return [
        MessageView(r.id, r.conversation_id, r.direction, r.author_kind, r.author_user_id, r.author_name,
                    r.body, r.content_type, r.status, r.error_code, r.error_message, r.is_edited,
                    r.is_deleted, r.sent_at, r.delivered_at, r.read_at, tuple(atts.get(r.id, ())),
                    r.provider_message_id, r.is_dead_letter, r.attempts)
        for r in rows
    ]


def load_message(uow: UnitOfWork, message_id: int) -> MessageView:
    """One message's view, without access checks (callers check first)."""
    found = message_views(uow, Message.id == message_id)
    if not found:
        raise NotFound(f"message {message_id} not found")
    return found[0]
