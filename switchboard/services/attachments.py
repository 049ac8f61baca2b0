"""Agents send files: an uploaded image or document becomes a PENDING outbound message with its
attachment row, sent by the outbox like any reply.

The platform's type and size limits (:mod:`switchboard.domain.attachments`) are checked before the
file is stored; the messaging window (:mod:`switchboard.domain.messaging_window`) as for free text.
The file is kept like inbound media: content addressed under ``<media dir>/<channel id>/`` with its
sha256 and size on the attachment row, so the thread shows and offers it exactly like a received one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select

from switchboard.clock import utcnow
from switchboard.db.schema import Attachment, Channel
from switchboard.domain.attachments import check_upload, platform_media
from switchboard.domain.conversation import ConversationAction, check, outbound_author
from switchboard.domain.messaging_window import require_free_text
from switchboard.errors import InvalidInput
from switchboard.services.conversations import load_conversation
from switchboard.services.messages import MessageView, load_message
from switchboard.services.outbox import (
    MAX_BODY,
    clean_key,
    conversation_window,
    enqueue_reply,
    existing_message,
    insert_outbound,
)
from switchboard.settings import get_settings
from switchboard.storage import store_bytes
from switchboard.types import Actor
from switchboard.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    """A file to send: its name, type (None: guessed from the name), bytes and optional caption."""

    file_name: str
    mime_type: str | None
    data: bytes
    caption: str | None = None


def enqueue_attachment(uow: UnitOfWork, actor: Actor, conversation_id: int, *, file_name: str,
                       mime_type: str | None, data: bytes, caption: str | None = None, idempotency_key: str,
                       now: datetime | None = None, media_dir: Path | None = None) -> MessageView:
    """Queue a file (PENDING) for the conversation's customer; the rules of a reply apply (the assignee
    or a manager with 'send', inside the messaging window). The same idempotency key returns the same
    message. On a platform without captions (Messenger, Instagram) the caption is queued as a second
    message right after the file."""
    now = now or utcnow()
    key = clean_key(idempotency_key)
    conv = load_conversation(uow, actor, conversation_id, lock=True)
    caption = (caption or "").strip() or None
    if caption is not None and len(caption) > MAX_BODY:
        raise InvalidInput(f"the caption is {len(caption)} characters long; the limit is {MAX_BODY}")
    mid = existing_message(uow, conv.organization_id, key, conversation_id)
    if mid is not None:
        return load_message(uow, mid)
    check(ConversationAction.REPLY, conv.participant, conv.facts)
    window = conversation_window(uow, actor, conversation_id, now)
    require_free_text(window)
    provider = uow.session.execute(select(Channel.provider).where(Channel.id == conv.channel_id)).scalar_one()
    kind, mime = check_upload(provider, file_name=file_name, mime_type=mime_type, size_bytes=len(data))
    separate_caption = caption is not None and not platform_media(provider).captions
    path, sha256 = store_bytes((media_dir or get_settings().media_dir) / str(conv.channel_id), data, mime)
    mid = insert_outbound(uow, organization_id=conv.organization_id, conversation_id=conversation_id,
                          channel_id=conv.channel_id, body=None if separate_caption else caption,
                          author_kind=outbound_author(conv.access.actor.acting_user_id),
                          author_user_id=conv.access.actor.acting_user_id, key=key,
                          now=now, reply_to=None, content_type=kind)
    has_row = uow.session.execute(select(Attachment.id).where(Attachment.message_id == mid)).first()
    if has_row is None:
        uow.session.execute(insert(Attachment).values(
            message_id=mid, kind=kind, mime_type=mime, file_name=Path(file_name).name[:300], size_bytes=len(data),
            sha256=sha256, local_path=str(path), data={"path": str(path), "uploaded": True}))
    if separate_caption:
        assert caption is not None
        enqueue_reply(uow, actor, conversation_id, caption, idempotency_key=f"{key}:caption"[:128], now=now)
    return load_message(uow, mid)

