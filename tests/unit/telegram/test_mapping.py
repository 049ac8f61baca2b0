"""Mapping of real Telethon TL objects and events (built without network) to our types."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from telethon import events
from telethon.tl import types

from connectors.telegram.gateway import (
    PeerRef,
    TgMessageEdited,
    TgMessagesDeleted,
    TgNewMessage,
    TgOutboxRead,
)
from connectors.telegram.mapping import (
    event_items,
    message_item,
    peer_ref,
    tg_dialog,
    tg_event,
    tg_message,
    tg_update,
)
from switchboard.types import Ignored, InboundMessage, MessageDeletion, MessageEdit, StatusUpdate

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADA = types.User(id=5001, access_hash=9191, first_name="Ada", last_name="Lovelace", username="ada",
                 phone="4915112345678")


def msg(**kw: object) -> types.Message:
    base: dict[str, object] = {"id": 7, "peer_id": types.PeerUser(5001), "date": NOW, "message": "hello"}
    base.update(kw)
    return types.Message(**base)


def test_peer_refs_and_marked_ids() -> None:
    assert peer_ref(types.PeerUser(5001)).marked_id == 5001
    assert peer_ref(types.PeerChat(42)).marked_id == -42
    assert peer_ref(types.PeerChannel(1234567)).marked_id == -1000001234567
    assert peer_ref(ADA) == PeerRef("user", 5001, 9191)
    assert PeerRef.from_marked(-1000001234567, 5) == PeerRef("channel", 1234567, 5)
    assert PeerRef.from_marked(-42) == PeerRef("chat", 42)


def test_incoming_private_text_message() -> None:
    tg = tg_message(msg(reply_to=types.MessageReplyHeader(reply_to_msg_id=3)), entities={5001: ADA})
    assert tg is not None
    assert tg.peer == PeerRef("user", 5001, 9191) and tg.sender_id == 5001 and not tg.out
    item = message_item(tg)
    assert isinstance(item, InboundMessage)
    assert item.provider_message_id == "5001:7"
    assert item.reply_to_provider_message_id == "5001:3"
    assert item.direction == "INBOUND" and item.author_kind == "customer"
    assert item.contact.provider_contact_id == "5001"
    assert item.contact.display_name == "Ada Lovelace" and item.contact.username == "ada"
    assert item.contact.phone == "4915112345678"
    assert item.sent_at == NOW and item.body == "hello"
    json.dumps(item.raw)  # raw is JSON-safe (dates, bytes)


def test_outgoing_message_is_an_agent_echo() -> None:
    tg = tg_message(msg(out=True, from_id=types.PeerUser(1001), message="on its way"))
    assert tg is not None
    item = message_item(tg)
    assert isinstance(item, InboundMessage)
    assert item.direction == "OUTBOUND" and item.author_kind == "agent"
    assert item.provider_message_id == "5001:7"


def test_group_and_channel_messages_keep_the_sender() -> None:
    group = types.Chat(id=42, title="Wholesale", photo=types.ChatPhotoEmpty(), participants_count=3,
                       date=NOW, version=1)
    tg = tg_message(msg(peer_id=types.PeerChat(42), from_id=types.PeerUser(5001)),
                    entities={-42: group, 5001: ADA})
    assert tg is not None
    item = message_item(tg)
    assert isinstance(item, InboundMessage)
    assert item.provider_message_id == "-42:7"
    assert item.contact.provider_contact_id == "-42" and item.contact.display_name == "Wholesale"
    assert item.raw["sender"] == {"id": 5001, "name": "Ada Lovelace", "username": "ada"}
    chan = tg_message(msg(peer_id=types.PeerChannel(1234567), id=99))
    assert chan is not None and message_item(chan).provider_message_id == "-1000001234567:99"  # type: ignore[union-attr]


def test_media_kinds() -> None:
    photo = types.MessageMediaPhoto(photo=types.Photo(
        id=1, access_hash=2, file_reference=b"\x01", date=NOW, dc_id=2,
        sizes=[types.PhotoSize(type="x", w=800, h=600, size=54321)]))
    doc = types.MessageMediaDocument(document=types.Document(
        id=3, access_hash=4, file_reference=b"\x02", date=NOW, mime_type="application/pdf", size=1000,
        dc_id=2, attributes=[types.DocumentAttributeFilename(file_name="invoice.pdf")]))
    voice = types.MessageMediaDocument(voice=True, document=types.Document(
        id=5, access_hash=6, file_reference=b"", date=NOW, mime_type="audio/ogg", size=10, dc_id=2,
        attributes=[types.DocumentAttributeAudio(duration=3, voice=True)]))
    geo = types.MessageMediaGeo(geo=types.GeoPoint(long=13.4, lat=52.5, access_hash=0))
    poll = types.MessageMediaPoll(poll=types.Poll(id=1, question=types.TextWithEntities("Q?", []), answers=[], hash=0),
                                  results=types.PollResults())
    got = {}
    for name, media in {"photo": photo, "doc": doc, "voice": voice, "geo": geo, "poll": poll}.items():
        tg = tg_message(msg(media=media, message=""))
        assert tg is not None
        item = message_item(tg)
        assert isinstance(item, InboundMessage)
        json.dumps(item.raw)
        got[name] = (item.content_type, item.attachments[0].kind, item.attachments[0].file_name,
                     item.attachments[0].size_bytes, item.body)
    assert got["photo"] == ("image", "image", None, 54321, None)
    assert got["doc"] == ("document", "document", "invoice.pdf", 1000, None)
    assert got["voice"] == ("audio", "audio", None, 10, None)
    assert got["geo"][:2] == ("location", "location")
    assert got["poll"][:2] == ("unsupported", "file")


def test_service_message_is_ignored_with_reason() -> None:
    svc = types.MessageService(id=8, peer_id=types.PeerChat(42), date=NOW,
                               action=types.MessageActionChatAddUser(users=[5001]))
    tg = tg_message(svc)
    assert tg is not None and tg.service
    item = message_item(tg)
    assert isinstance(item, Ignored) and "MessageActionChatAddUser" in item.reason
    assert tg_message(types.MessageEmpty(id=9, peer_id=types.PeerUser(1))) is None


def test_dialog_mapping() -> None:
    dialog = types.Dialog(peer=types.PeerUser(5001), top_message=77, read_inbox_max_id=70,
                          read_outbox_max_id=75, unread_count=2, unread_mentions_count=0,
                          unread_reactions_count=0, unread_poll_votes_count=0,
                          notify_settings=types.PeerNotifySettings())
    info = tg_dialog(dialog, {5001: ADA})
    assert info.peer == PeerRef("user", 5001, 9191) and info.top_message_id == 77
    assert info.unread_count == 2 and info.title == "Ada Lovelace" and info.user is not None


def test_raw_updates() -> None:
    new = tg_update(types.UpdateNewMessage(message=msg(), pts=1, pts_count=1), entities={5001: ADA})
    assert isinstance(new, TgNewMessage) and new.message.key == "5001:7"
    edited = tg_update(types.UpdateEditMessage(message=msg(message="hello!", edit_date=NOW), pts=2, pts_count=1))
    assert isinstance(edited, TgMessageEdited)
    deleted = tg_update(types.UpdateDeleteMessages(messages=[7, 8], pts=3, pts_count=2), now=NOW)
    assert deleted == TgMessagesDeleted((7, 8), None, NOW)
    chan_del = tg_update(types.UpdateDeleteChannelMessages(channel_id=55, messages=[3], pts=1, pts_count=1),
                         now=NOW)
    assert chan_del == TgMessagesDeleted((3,), PeerRef("channel", 55), NOW)
    read = tg_update(types.UpdateReadHistoryOutbox(peer=types.PeerUser(5001), max_id=7, pts=4, pts_count=1),
                     now=NOW)
    assert read == TgOutboxRead(PeerRef("user", 5001), 7, NOW)
    assert tg_update(types.UpdateUserTyping(user_id=5001, action=types.SendMessageTypingAction())) is None


def test_telethon_events_to_items() -> None:
    new = tg_event(events.NewMessage.build(types.UpdateNewMessage(message=msg(), pts=1, pts_count=1)))
    assert isinstance(new, TgNewMessage)
    items = event_items(new)
    assert isinstance(items[0], InboundMessage) and items[0].provider_message_id == "5001:7"

    edit_ev = events.MessageEdited.build(
        types.UpdateEditMessage(message=msg(message="fixed", edit_date=NOW), pts=2, pts_count=1))
    edited = tg_event(edit_ev)
    assert isinstance(edited, TgMessageEdited)
    [edit] = event_items(edited)
    assert isinstance(edit, MessageEdit)
    assert edit == MessageEdit("5001:7", "fixed", NOW, "5001", edit.raw)

    del_ev = events.MessageDeleted.build(
        types.UpdateDeleteChannelMessages(channel_id=55, messages=[3, 4], pts=1, pts_count=2))
    deleted = tg_event(del_ev, now=NOW)
    assert isinstance(deleted, TgMessagesDeleted)
    dels = event_items(deleted)
    assert [d.provider_message_id for d in dels if isinstance(d, MessageDeletion)] == [
        "-1000000000055:3", "-1000000000055:4"]
    private_del = tg_event(events.MessageDeleted.build(
        types.UpdateDeleteMessages(messages=[7], pts=1, pts_count=1)), now=NOW)
    assert isinstance(private_del, TgMessagesDeleted) and private_del.peer is None
    assert event_items(private_del) == []  # the pipeline resolves the chat from stored messages

    read_ev = events.MessageRead.build(
        types.UpdateReadHistoryOutbox(peer=types.PeerUser(5001), max_id=7, pts=4, pts_count=1))
    read = tg_event(read_ev, now=NOW)
    assert isinstance(read, TgOutboxRead)
    [status] = event_items(read)
    assert isinstance(status, StatusUpdate)
    assert (status.provider_message_id, status.status, status.occurred_at) == ("5001:7", "READ", NOW)
    inbox_read = events.MessageRead.build(
        types.UpdateReadHistoryInbox(peer=types.PeerUser(5001), max_id=7, still_unread_count=0, pts=5,
                                     pts_count=1))
    assert tg_event(inbox_read) is None  # we read their messages: not a delivery status
