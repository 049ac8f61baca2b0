"""Mapping in two layers, both pure functions without network:

1. Telethon TL objects and events -> the port's dataclasses (:mod:`connectors.telegram.gateway`);
2. the port's dataclasses -> :mod:`switchboard.types` items the ingest service takes.

Keys: a message's ``provider_message_id`` is ``f"{marked_chat_id}:{message_id}"``; the chat is the
conversation's contact (``provider_contact_id = str(marked_chat_id)``), so a group is one
conversation and its members' names travel in ``raw["sender"]``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from telethon import events, utils
from telethon.tl import types

from connectors.telegram.gateway import (
    DialogInfo,
    PeerRef,
    TgEvent,
    TgMedia,
    TgMessage,
    TgMessageEdited,
    TgMessagesDeleted,
    TgNewMessage,
    TgOutboxRead,
    TgUser,
)
from switchboard.types import (
    AttachmentRef,
    ContactRef,
    Ignored,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    ParsedItem,
    StatusUpdate,
)

# --- helpers -----------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A TL ``to_dict()`` made JSON-safe: datetimes as ISO strings, bytes as base64, Nones dropped."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- TL -> port --------------------------------------------------------------------------------


def peer_ref(peer: Any, access_hash: int | None = None) -> PeerRef:
    """A PeerRef from a TL Peer/InputPeer or an entity (User/Chat/Channel)."""
    if isinstance(peer, types.User | types.PeerUser | types.InputPeerUser):
        uid = peer.id if isinstance(peer, types.User) else peer.user_id
        ah = getattr(peer, "access_hash", None)
        return PeerRef("user", uid, ah if ah is not None else access_hash)
    if isinstance(peer, types.Chat | types.ChatForbidden | types.PeerChat | types.InputPeerChat):
        cid = peer.chat_id if isinstance(peer, types.PeerChat | types.InputPeerChat) else peer.id
        return PeerRef("chat", cid, None)
    if isinstance(peer, types.Channel | types.ChannelForbidden | types.PeerChannel | types.InputPeerChannel):
        chid = peer.channel_id if isinstance(peer, types.PeerChannel | types.InputPeerChannel) else peer.id
        ah = getattr(peer, "access_hash", None)
        return PeerRef("channel", chid, ah if ah is not None else access_hash)
    raise TypeError(f"not a Telegram peer: {type(peer).__name__}")


def input_peer(peer: PeerRef) -> Any:
    """The TL InputPeer for a PeerRef (what requests take)."""
    if peer.peer_type == "user":
        return types.InputPeerUser(peer.peer_id, peer.access_hash or 0)
    if peer.peer_type == "chat":
        return types.InputPeerChat(peer.peer_id)
    return types.InputPeerChannel(peer.peer_id, peer.access_hash or 0)


def tg_user(user: Any) -> TgUser | None:
    if not isinstance(user, types.User):
        return None
    return TgUser(
        id=user.id,
        first_name=user.first_name,
        last_name=user.last_name,
        username=user.username,
        phone=user.phone,
        is_bot=bool(user.bot),
        access_hash=user.access_hash,
    )


def _title(entity: Any) -> str | None:
    if isinstance(entity, types.Chat | types.Channel | types.ChatForbidden | types.ChannelForbidden):
        return str(entity.title)
    if isinstance(entity, types.User):
        user = tg_user(entity)
        return user.display_name if user else None
    return None


def _document_kind(doc: types.Document, media: types.MessageMediaDocument) -> tuple[str, str | None]:
    file_name = None
    kind = "document"
    mime = doc.mime_type or ""
    for attr in doc.attributes:
        if isinstance(attr, types.DocumentAttributeFilename):
            file_name = attr.file_name
        elif isinstance(attr, types.DocumentAttributeSticker):
            kind = "sticker"
        elif isinstance(attr, types.DocumentAttributeAudio) and kind == "document":
            kind = "voice" if attr.voice else "audio"
        elif isinstance(attr, types.DocumentAttributeVideo) and kind == "document":
            kind = "video"
    if kind == "document" and media.voice:
        kind = "voice"
    elif kind == "document" and (media.video or media.round or mime.startswith("video/")):
        kind = "video"
    elif kind == "document" and mime.startswith("audio/"):
        kind = "audio"
    elif kind == "document" and mime.startswith("image/") and mime != "image/webp":
        kind = "image"
    return kind, file_name


def largest_photo_size(photo: types.Photo) -> tuple[str, int] | None:
    """``(type, bytes)`` of a photo's largest image size: what Switchboard downloads (never the
    animated ``video_sizes``, never the inline thumbnails or the SVG outline)."""
    best: tuple[str, int] | None = None
    for size in photo.sizes:
        if isinstance(size, types.PhotoSize):
            candidate = (size.type, int(size.size))
        elif isinstance(size, types.PhotoSizeProgressive) and size.sizes:
            candidate = (size.type, int(max(size.sizes)))
        else:
            continue
        if best is None or candidate[1] > best[1]:
            best = candidate
    return best


def tg_media(media: Any) -> TgMedia | None:
    """Our description of a message's media (None for no media or a web page preview)."""
    if media is None or isinstance(media, types.MessageMediaEmpty | types.MessageMediaWebPage):
        return None
    if isinstance(media, types.MessageMediaPhoto):
        photo = media.photo
        if isinstance(photo, types.Photo):
            largest = largest_photo_size(photo)
            return TgMedia("image", "image/jpeg", None, largest[1] if largest else None, str(photo.id))
        return TgMedia("image", data={"expired": True})
    if isinstance(media, types.MessageMediaDocument):
        doc = media.document
        if isinstance(doc, types.Document):
            kind, file_name = _document_kind(doc, media)
            return TgMedia(kind, doc.mime_type, file_name, doc.size, str(doc.id))
        return TgMedia("document", data={"expired": True})
    if isinstance(media, types.MessageMediaGeo | types.MessageMediaGeoLive | types.MessageMediaVenue):
        geo = media.geo
        data: dict[str, Any] = {}
        if isinstance(geo, types.GeoPoint):
            data = {"latitude": geo.lat, "longitude": geo.long}
        if isinstance(media, types.MessageMediaVenue):
            data.update({"name": media.title, "address": media.address})
        return TgMedia("location", data=data)
    if isinstance(media, types.MessageMediaContact):
        return TgMedia("contacts", data={
            "phone": media.phone_number, "first_name": media.first_name, "last_name": media.last_name,
            "user_id": media.user_id,
        })
    if isinstance(media, types.MessageMediaPoll):
        return TgMedia("poll", data={"question": getattr(media.poll.question, "text", None)})
    return TgMedia("other", data={"type": type(media).__name__})


def tg_message(
    msg: Any,
    *,
    entities: Mapping[int, Any] | None = None,
    access_hash: int | None = None,
) -> TgMessage | None:
    """Map a TL ``Message``/``MessageService`` (None for ``MessageEmpty``).

    ``entities`` maps marked ids to User/Chat/Channel objects (as a ``messages.Messages`` result or
    an ``Updates`` container carries them); without it, the entities Telethon cached on the message
    (``msg.chat``/``msg.sender``) are used when present.
    """
    if not isinstance(msg, types.Message | types.MessageService):
        return None
    ents = entities or {}
    chat_id = utils.get_peer_id(msg.peer_id)
    chat_entity = ents.get(chat_id) or getattr(msg, "chat", None)
    chat_hash = getattr(chat_entity, "access_hash", None) if chat_entity is not None else None
    peer = peer_ref(msg.peer_id, chat_hash if chat_hash is not None else access_hash)

    sender_id: int | None = utils.get_peer_id(msg.from_id) if msg.from_id is not None else None
    if sender_id is None and peer.peer_type == "user" and not msg.out:
        sender_id = peer.peer_id  # incoming private message: the other party wrote it
    sender_entity = (ents.get(sender_id) if sender_id is not None else None) or getattr(msg, "sender", None)

    reply_to = None
    if isinstance(msg.reply_to, types.MessageReplyHeader) and msg.reply_to.reply_to_msg_id:
        reply_to = msg.reply_to.reply_to_msg_id
    date = _utc(msg.date) or datetime.now(UTC)
    if isinstance(msg, types.MessageService):
        return TgMessage(
            peer=peer, id=msg.id, date=date, text=None, out=bool(msg.out), sender_id=sender_id,
            sender=tg_user(sender_entity), chat_title=_title(chat_entity), chat_user=tg_user(chat_entity),
            reply_to_msg_id=reply_to, service=True, raw=jsonable(msg.to_dict()),
        )
    return TgMessage(
        peer=peer,
        id=msg.id,
        date=date,
        text=msg.message or None,
        out=bool(msg.out),
        sender_id=sender_id,
        sender=tg_user(sender_entity),
        chat_title=_title(chat_entity),
        chat_user=tg_user(chat_entity),
        reply_to_msg_id=reply_to,
        media=tg_media(msg.media),
        edit_date=_utc(msg.edit_date),
        raw=jsonable(msg.to_dict()),
    )


def tg_dialog(dialog: Any, entities: Mapping[int, Any]) -> DialogInfo:
    """Map a TL ``Dialog`` with the users/chats of its ``messages.Dialogs`` result."""
    marked = utils.get_peer_id(dialog.peer)
    entity = entities.get(marked)
    ah = getattr(entity, "access_hash", None) if entity is not None else None
    return DialogInfo(
        peer=peer_ref(dialog.peer, ah),
        title=_title(entity),
        top_message_id=int(dialog.top_message),
        unread_count=int(dialog.unread_count or 0),
        user=tg_user(entity),
    )


def tg_update(update: Any, *, entities: Mapping[int, Any] | None = None,
              now: datetime | None = None) -> TgEvent | None:
    """Map one raw TL update to our event (None for updates Switchboard does not use)."""
    at = now or datetime.now(UTC)
    if isinstance(update, types.UpdateNewMessage | types.UpdateNewChannelMessage):
        msg = tg_message(update.message, entities=entities)
        return TgNewMessage(msg) if msg is not None else None
    if isinstance(update, types.UpdateEditMessage | types.UpdateEditChannelMessage):
        msg = tg_message(update.message, entities=entities)
        return TgMessageEdited(msg) if msg is not None else None
    if isinstance(update, types.UpdateDeleteMessages):
        return TgMessagesDeleted(tuple(update.messages), None, at)
    if isinstance(update, types.UpdateDeleteChannelMessages):
        return TgMessagesDeleted(tuple(update.messages), PeerRef("channel", update.channel_id), at)
    if isinstance(update, types.UpdateReadHistoryOutbox):
        return TgOutboxRead(peer_ref(update.peer), update.max_id, at)
    if isinstance(update, types.UpdateReadChannelOutbox):
        return TgOutboxRead(PeerRef("channel", update.channel_id), update.max_id, at)
    return None


def tg_event(event: Any, *, now: datetime | None = None) -> TgEvent | None:
    """Map a Telethon event object (``events.NewMessage.Event`` etc.) to our event."""
    at = now or datetime.now(UTC)
    if isinstance(event, events.MessageEdited.Event):
        msg = tg_message(event.message)
        return TgMessageEdited(msg) if msg is not None else None
    if isinstance(event, events.NewMessage.Event):
        msg = tg_message(event.message)
        return TgNewMessage(msg) if msg is not None else None
    if isinstance(event, events.MessageDeleted.Event):
        peer = peer_ref(event._chat_peer) if event._chat_peer is not None else None
        return TgMessagesDeleted(tuple(event.deleted_ids or ()), peer, at)
    if isinstance(event, events.MessageRead.Event):
        if not event.outbox or event._chat_peer is None or event.max_id is None:
            return None
        return TgOutboxRead(peer_ref(event._chat_peer), int(event.max_id), at)
    return None


# --- port -> switchboard.types -----------------------------------------------------------------


def message_key(peer: PeerRef, message_id: int) -> str:
    return f"{peer.marked_id}:{message_id}"


def contact_ref(peer: PeerRef, *, user: TgUser | None = None, title: str | None = None) -> ContactRef:
    """The conversation partner: the user of a private chat, else the group/channel itself."""
    metadata: dict[str, Any] = {"peer_type": peer.peer_type, "peer_id": peer.peer_id}
    if user is not None and peer.peer_type == "user":
        if user.is_bot:
            metadata["is_bot"] = True
        return ContactRef(
            provider_contact_id=str(peer.marked_id),
            display_name=user.display_name or title,
            username=user.username,
            phone=user.phone,
            metadata=metadata,
        )
    return ContactRef(provider_contact_id=str(peer.marked_id), display_name=title, metadata=metadata)


def dialog_contact(dialog: DialogInfo) -> ContactRef:
    return contact_ref(dialog.peer, user=dialog.user, title=dialog.title)


def message_contact(msg: TgMessage) -> ContactRef:
    user = msg.chat_user
    if user is None and msg.peer.peer_type == "user" and not msg.out and msg.sender is not None:
        user = msg.sender
    return contact_ref(msg.peer, user=user, title=msg.chat_title)


_CONTENT_TYPES = {
    "image": "image", "video": "video", "audio": "audio", "voice": "audio", "document": "document",
    "sticker": "sticker", "location": "location", "contacts": "contacts",
}


def _attachment(media: TgMedia) -> AttachmentRef:
    kind = media.kind if media.kind in _CONTENT_TYPES else "file"
    if kind == "voice":
        kind = "audio"
    return AttachmentRef(
        kind=kind,
        mime_type=media.mime_type,
        provider_media_id=media.media_id,
        file_name=media.file_name,
        size_bytes=media.size_bytes,
        data=dict(media.data),
    )


def message_item(msg: TgMessage, contact: ContactRef | None = None) -> ParsedItem:
    """One stored message: inbound from the customer, or OUTBOUND when the account itself wrote it
    (in the Telegram app, or echoed back from a Switchboard send: the same key dedupes it)."""
    if msg.service:
        action = str(msg.raw.get("action", {}).get("_", "service"))
        return Ignored(reason=f"Telegram service message ({action}) in chat {msg.peer.marked_id}",
                       kind="telegram_service", raw={"key": msg.key, **msg.raw})
    content_type = "text"
    attachments: tuple[AttachmentRef, ...] = ()
    if msg.media is not None:
        content_type = _CONTENT_TYPES.get(msg.media.kind, "unsupported")
        attachments = (_attachment(msg.media),)
    raw = dict(msg.raw)
    if msg.sender is not None and msg.peer.peer_type != "user":
        raw["sender"] = {"id": msg.sender.id, "name": msg.sender.display_name,
                         "username": msg.sender.username}
    return InboundMessage(
        provider_message_id=msg.key,
        contact=contact or message_contact(msg),
        sent_at=msg.date,
        body=msg.text,
        content_type=content_type,
        attachments=attachments,
        reply_to_provider_message_id=message_key(msg.peer, msg.reply_to_msg_id) if msg.reply_to_msg_id else None,
        direction="OUTBOUND" if msg.out else "INBOUND",
        author_kind="agent" if msg.out else "customer",
        raw=raw,
    )


def event_items(event: TgEvent) -> list[ParsedItem]:
    """Domain items for one live event. Deletions without a chat (private chats, basic groups)
    give no item here: the caller resolves their chat from the stored messages."""
    if isinstance(event, TgNewMessage):
        return [message_item(event.message)]
    if isinstance(event, TgMessageEdited):
        msg = event.message
        return [MessageEdit(provider_message_id=msg.key, new_body=msg.text,
                            edited_at=msg.edit_date or msg.date,
                            provider_contact_id=str(msg.peer.marked_id), raw=msg.raw)]
    if isinstance(event, TgMessagesDeleted):
        if event.peer is None:
            return []
        peer = event.peer
        return [MessageDeletion(provider_message_id=message_key(peer, mid), deleted_at=event.occurred_at,
                                provider_contact_id=str(peer.marked_id), raw={"message_id": mid})
                for mid in event.message_ids]
    # TgOutboxRead: everything up to max_id was read; the newest one carries the READ status.
    return [StatusUpdate(provider_message_id=message_key(event.peer, event.max_id), status="READ",
                         occurred_at=event.occurred_at, recipient_id=str(event.peer.marked_id),
                         raw={"max_id": event.max_id, "peer": event.peer.to_dict()})]
