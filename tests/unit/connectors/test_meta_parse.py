"""Messenger and Instagram webhook parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.base import PayloadError
from connectors.meta import parse_meta_webhook
from switchboard.types import Ignored, InboundMessage, MessageDeletion, MessageEdit, ReadWatermark

PAGE = "111"
USER = "999"
T = 1_700_000_000_000


def _page(*events: dict[str, Any], obj: str = "page") -> bytes:
    return json.dumps({"object": obj, "entry": [{"id": PAGE, "time": T, "messaging": list(events)}]}).encode()


def _ev(**kw: Any) -> dict[str, Any]:
    return {"sender": {"id": USER}, "recipient": {"id": PAGE}, "timestamp": T, **kw}


def test_text_message_and_quick_reply() -> None:
    (msg,) = parse_meta_webhook(_page(_ev(message={"mid": "m_1", "text": "hi", "quick_reply": {"payload": "P"},
                                                   "reply_to": {"mid": "m_0"}})), "messenger", account_id=PAGE)
    assert isinstance(msg, InboundMessage)
    assert (msg.provider_message_id, msg.body, msg.content_type) == ("m_1", "hi", "text")
    assert msg.contact.provider_contact_id == USER and msg.direction == "INBOUND"
    assert msg.sent_at.timestamp() == T / 1000 and msg.reply_to_provider_message_id == "m_0"
    assert msg.attachments[0].kind == "quick_reply" and msg.attachments[0].data["payload"] == "P"


def test_attachments() -> None:
    atts = [{"type": "image", "payload": {"url": "https://cdn/x.jpg"}},
            {"type": "file", "payload": {"url": "https://cdn/x.pdf"}},
            {"type": "location", "payload": {"coordinates": {"lat": 1.5, "long": 2.5}}, "title": "Home"}]
    (msg,) = parse_meta_webhook(_page(_ev(message={"mid": "m_2", "attachments": atts})), "messenger")
    assert isinstance(msg, InboundMessage) and msg.content_type == "image" and msg.body is None
    assert [a.kind for a in msg.attachments] == ["image", "document", "location"]
    assert msg.attachments[0].url == "https://cdn/x.jpg" and msg.attachments[2].data["latitude"] == 1.5


@pytest.mark.parametrize(("app_id", "bots", "author"), [(None, frozenset(), "agent"),
                                                        (263902037430900, frozenset(), "agent"),
                                                        (42, frozenset({"42"}), "bot")])
def test_echo_is_outbound(app_id: int | None, bots: frozenset[str], author: str) -> None:
    message: dict[str, Any] = {"mid": "m_3", "text": "from the page inbox", "is_echo": True}
    if app_id is not None:
        message["app_id"] = app_id
    ev = {"sender": {"id": PAGE}, "recipient": {"id": USER}, "timestamp": T, "message": message}
    (msg,) = parse_meta_webhook(_page(ev), "messenger", account_id=PAGE, bot_app_ids=bots)
    assert isinstance(msg, InboundMessage)
    assert msg.direction == "OUTBOUND" and msg.author_kind == author
    assert msg.contact.provider_contact_id == USER


def test_watermarks_and_postback() -> None:
    items = parse_meta_webhook(_page(
        _ev(delivery={"mids": ["m_a", "m_b"], "watermark": T - 5000}),
        _ev(read={"watermark": T - 1000}),
        _ev(postback={"title": "Get Started", "payload": "START", "mid": "m_pb"}),
    ), "messenger", account_id=PAGE)
    delivered, read, postback = items
    assert isinstance(delivered, ReadWatermark) and delivered.status == "DELIVERED"
    assert delivered.provider_message_ids == ("m_a", "m_b") and delivered.watermark.timestamp() == (T - 5000) / 1000
    assert isinstance(read, ReadWatermark) and read.status == "READ" and read.provider_contact_id == USER
    assert isinstance(postback, InboundMessage) and postback.content_type == "postback"
    assert postback.body == "Get Started" and postback.provider_message_id == "m_pb"
    assert postback.attachments[0].data["payload"] == "START"


def test_instagram_seen_reaction_edit_delete_and_changes_format() -> None:
    items = parse_meta_webhook(_page(
        _ev(read={"mid": "m_ig1"}),
        _ev(reaction={"mid": "m_ig1", "action": "react", "reaction": "love", "emoji": "❤️"}),
        _ev(reaction={"mid": "m_ig1", "action": "unreact"}),
        _ev(message_edit={"mid": "m_ig2", "text": "fixed", "num_edit": 1}),
        _ev(message={"mid": "m_ig3", "is_deleted": True}),
        obj="instagram"), "instagram", account_id=PAGE)
    seen, react, unreact, edit, deleted = items
    assert isinstance(seen, ReadWatermark) and seen.status == "READ" and seen.provider_message_ids == ("m_ig1",)
    assert isinstance(react, InboundMessage) and react.body == "❤️" and react.reply_to_provider_message_id == "m_ig1"
    assert isinstance(unreact, InboundMessage) and unreact.body is None
    assert react.provider_message_id != unreact.provider_message_id
    assert isinstance(edit, MessageEdit) and edit.new_body == "fixed"
    assert isinstance(deleted, MessageDeletion) and deleted.provider_message_id == "m_ig3"
    changes = {"object": "instagram", "entry": [{"id": PAGE, "time": T, "changes": [
        {"field": "messaging_seen", "value": _ev(read={"mid": "m_ig4"})},
        {"field": "comments", "value": {"id": "c1", "text": "nice"}}]}]}
    seen2, comment = parse_meta_webhook(json.dumps(changes).encode(), "instagram")
    assert isinstance(seen2, ReadWatermark) and seen2.provider_message_ids == ("m_ig4",)
    assert isinstance(comment, Ignored) and "comments" in comment.reason


def test_other_events_are_ignored_with_reason() -> None:
    items = parse_meta_webhook(_page(_ev(optin={"ref": "x"}), _ev(something_new={"a": 1})), "messenger")
    assert all(isinstance(i, Ignored) for i in items)
    assert "optin" in items[0].reason and "something_new" in items[1].reason  # type: ignore[union-attr]
    empty = json.dumps({"object": "page", "entry": [{"id": PAGE, "time": T, "messaging": []}]}).encode()
    (only,) = parse_meta_webhook(empty, "messenger")
    assert isinstance(only, Ignored)


@pytest.mark.parametrize(("raw", "provider", "code"), [
    (b"{", "messenger", "invalid_json"),
    (_page(_ev(message={"mid": "m"})), "instagram", "wrong_object"),
    (b'{"object": "page"}', "messenger", "bad_shape"),
    (_page(_ev(message={"text": "no mid"})), "messenger", "bad_shape"),
    (_page({"recipient": {"id": PAGE}, "timestamp": T, "message": {"mid": "m"}}), "messenger", "bad_shape"),
    (_page(_ev(timestamp="yesterday", message={"mid": "m"})), "messenger", "bad_timestamp"),
])
def test_malformed(raw: bytes, provider: Any, code: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_meta_webhook(raw, provider)
    assert info.value.code == code
