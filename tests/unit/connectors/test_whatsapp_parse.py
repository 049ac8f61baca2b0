"""Every recorded WhatsApp webhook payload parses into domain items; malformed bodies are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.base import PayloadError
from connectors.whatsapp import (
    channel_phone_number_id,
    parse_whatsapp_webhook,
    parse_whatsapp_webhook_by_number,
)
from switchboard.types import (
    Ignored,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    StatusUpdate,
)

# a copy of the shared corpus (pywa, MIT) lives next to this test so the checkout is self-contained
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "whatsapp"


def _cases() -> list[Any]:
    cases = []
    for path in sorted(FIXTURES.glob("*.json")):
        for name, body in json.loads(path.read_text()).items():
            cases.append(pytest.param(path.stem, name, body, id=f"{path.stem}:{name}"))
    return cases


CASES = _cases()

# what each fixture file must turn into
EXPECTED_KIND = {
    "account_update": Ignored,
    "user_marketing_preferences": Ignored,
    "system": Ignored,
    "message_status": StatusUpdate,
    "deleted_message": MessageDeletion,
    "edited_message": MessageEdit,
    "message": InboundMessage,
    "callback_button": InboundMessage,
    "callback_selection": InboundMessage,
}


def test_fixture_corpus_is_present() -> None:
    assert len(CASES) >= 60, f"expected the WhatsApp fixture corpus under {FIXTURES}"


@pytest.mark.parametrize(("file", "case", "body"), CASES)
def test_every_fixture_case_parses(file: str, case: str, body: dict[str, Any]) -> None:
    items = parse_whatsapp_webhook(json.dumps(body).encode())
    assert items, "every payload yields at least one item"
    expected = EXPECTED_KIND.get(file)
    if expected is not None:
        assert all(isinstance(i, expected) for i in items), items
    for item in items:
        if isinstance(item, Ignored):
            assert item.reason
        if isinstance(item, InboundMessage):
            assert item.provider_message_id and item.contact.provider_contact_id
            assert item.sent_at.tzinfo is not None


def _one(file: str, case: str) -> Any:
    body = json.loads((FIXTURES / f"{file}.json").read_text())[case]
    items = parse_whatsapp_webhook(json.dumps(body).encode())
    assert len(items) == 1
    return items[0]


def test_text_message_details() -> None:
    msg = _one("message", "text")
    assert msg.body == "Body Text" and msg.content_type == "text"
    assert msg.contact.display_name == "Test Name" and msg.contact.phone == "972987654321"
    assert msg.sent_at.timestamp() == 1697043223
    assert msg.direction == "INBOUND" and msg.author_kind == "customer"


@pytest.mark.parametrize(("case", "kind", "caption"), [
    ("image", "image", None), ("video", "video", "caption"), ("document", "document", "caption"),
    ("audio", "audio", None), ("voice", "audio", None), ("static_sticker", "sticker", None),
])
def test_media_messages_carry_media_ids(case: str, kind: str, caption: str | None) -> None:
    msg = _one("message", case)
    assert msg.content_type == kind and msg.body == caption
    (att,) = msg.attachments
    assert att.kind == kind and att.provider_media_id and att.mime_type
    if case == "document":
        assert att.file_name == "filename.pdf"
    if case == "voice":
        assert att.data["voice"] is True


def test_reactions_replies_locations_contacts_orders() -> None:
    reaction = _one("message", "reaction")
    assert reaction.content_type == "reaction" and reaction.body == "😮"
    assert reaction.reply_to_provider_message_id == "wamid.yzxyzx="
    assert _one("message", "unreaction_empty").body is None
    assert _one("message", "reply").reply_to_provider_message_id == "wamid.xyzxyz=="
    loc = _one("message", "chosen_location")
    assert loc.attachments[0].data["latitude"] == 37.4611978 and "Facebook HQ" in loc.body
    assert _one("message", "contacts").body == "Chandler Bing, Monica, Rachel Green"
    assert "3 x HAMBURGER" in _one("message", "order").body
    assert _one("callback_selection", "description").attachments[0].data["id"] == "callback_data"
    assert _one("callback_button", "quick_reply").body == "title"
    unsupported = _one("message", "unsupported_with_type")
    assert unsupported.content_type == "unsupported" and unsupported.attachments[0].data["type"] == "pool"


def test_statuses_edits_deletions_echoes() -> None:
    failed = _one("message_status", "failed")
    assert failed.status == "FAILED" and failed.error_code == "130472"
    assert "experiment" in (failed.error_message or "")
    assert _one("message_status", "played").status == "READ"
    assert _one("message_status", "with_tracker").raw["biz_opaque_callback_data"] == "some data"
    edit = _one("edited_message", "image")
    assert edit.new_body == "Updated image caption"
    assert edit.provider_message_id.startswith("wamid.HBgLMTQxMjU1NTA4")
    deletion = _one("deleted_message", "revoke")
    assert deletion.provider_message_id == "<ORIGINAL_WHATSAPP_MESSAGE_ID>"
    echo = _one("outgoing_message", "text")
    assert echo.direction == "OUTBOUND" and echo.author_kind == "agent" and echo.body == "Test message"
    assert echo.contact.provider_contact_id == "<WHATSAPP_USER_PHONE_NUMBER>"
    assert _one("outgoing_message", "edit").new_body == "Text was edited"
    assert _one("outgoing_message", "delete").provider_message_id == "wamid.zzzzzz"


def test_ignored_items_say_why() -> None:
    assert "ACCOUNT_VIOLATION" in _one("account_update", "account_violation").reason
    assert "user_changed_number" in _one("system", "phone_number_change").reason
    assert "user_preferences" in _one("user_marketing_preferences", "resume").reason


@pytest.mark.parametrize(("raw", "code"), [
    (b"not json", "invalid_json"),
    (b"[1, 2]", "not_object"),
    (b'{"object": "page", "entry": []}', "wrong_object"),
    (b'{"object": "whatsapp_business_account"}', "bad_shape"),
    (b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": 3}]}]}',
     "bad_shape"),
    (b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": '
     b'{"messages": [{"from": "1", "id": "w", "timestamp": "soon", "type": "text"}]}}]}]}', "bad_timestamp"),
    (b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": '
     b'{"messages": [{"from": "1", "timestamp": "1", "type": "text"}]}}]}]}', "bad_shape"),
])
def test_malformed_bodies_raise_payload_error_with_reason(raw: bytes, code: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_whatsapp_webhook(raw)
    assert info.value.code == code and str(info.value)


def test_unknown_but_valid_is_ignored() -> None:
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}]}
    (item,) = parse_whatsapp_webhook(json.dumps(body).encode())
    assert isinstance(item, Ignored) and "message_template_status_update" in item.reason
    future = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
              "value": {"messages": [{"from": "1", "id": "w1", "timestamp": "1", "type": "hologram",
                                      "hologram": {"x": 1}}]}}]}]}
    (msg,) = parse_whatsapp_webhook(json.dumps(future).encode())
    assert isinstance(msg, InboundMessage) and msg.content_type == "unsupported"
    assert msg.attachments[0].data["type"] == "hologram"


@pytest.mark.parametrize(("file", "case", "body"), CASES)
def test_every_fixture_case_names_the_number_of_each_change(file: str, case: str, body: dict[str, Any]) -> None:
    groups = parse_whatsapp_webhook_by_number(json.dumps(body).encode())
    assert [i for _, items in groups for i in items] == parse_whatsapp_webhook(json.dumps(body).encode())
    numbers = [c["value"].get("metadata", {}).get("phone_number_id")
               for e in body["entry"] for c in e["changes"]]
    assert [n for n, _ in groups] == numbers


def test_changes_for_two_numbers_in_one_delivery_stay_apart() -> None:
    def change(number: str | None, wamid: str) -> dict[str, Any]:
        value: dict[str, Any] = {"messaging_product": "whatsapp",
                                 "messages": [{"from": "49", "id": wamid, "timestamp": "1", "type": "text",
                                               "text": {"body": wamid}}]}
        if number is not None:
            value["metadata"] = {"display_phone_number": "1555", "phone_number_id": number}
        return {"field": "messages", "value": value}

    body = {"object": "whatsapp_business_account", "entry": [
        {"id": "waba-1", "changes": [change("111", "w1"), change("222", "w2")]},
        {"id": "waba-2", "changes": [change(None, "w3"), {"field": "account_update", "value": {"event": "X"}}]}]}
    groups = parse_whatsapp_webhook_by_number(json.dumps(body).encode())
    assert [(n, [getattr(i, "provider_message_id", None) for i in items]) for n, items in groups] == [
        ("111", ["w1"]), ("222", ["w2"]), (None, ["w3"]), (None, [None])]
    empty = parse_whatsapp_webhook_by_number(b'{"object": "whatsapp_business_account", "entry": []}')
    assert [(n, [type(i) for i in items]) for n, items in empty] == [(None, [Ignored])]


def test_channel_phone_number_id_prefers_the_credential() -> None:
    assert channel_phone_number_id("100", {"phone_number_id": "200"}) == "200"
    assert channel_phone_number_id("100", {}) == "100"
    assert channel_phone_number_id(None, {"phone_number_id": 300}) == "300"
    assert channel_phone_number_id(" ", {}) is None
