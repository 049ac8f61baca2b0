"""Twilio and email webhook bodies that are not what they should be: a clear PayloadError, or a
sensible fallback, never a crash."""

from __future__ import annotations

import json

import pytest

from connectors.base import PayloadError
from connectors.email import message_ids, parse_email_webhook, reply_subject
from connectors.twilio import parse_twilio_webhook
from switchboard.types import Ignored, InboundMessage


@pytest.mark.parametrize(("raw", "code"), [
    (b"Body=hi&From=%2B14155550123", "bad_shape"),  # no MessageSid
    (b"MessageSid=SM1&Body=hi&SmsStatus=received", "bad_shape"),  # no From
    (b"MessageSid=SM1&From=%2B14155550123&NumMedia=two", "bad_shape"),
    (b"\xff\xfe", "invalid_form"),
])
def test_malformed_twilio_bodies(raw: bytes, code: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_twilio_webhook(raw)
    assert info.value.code == code


def test_unknown_twilio_status_and_odd_senders_are_kept() -> None:
    [ignored] = parse_twilio_webhook(b"MessageSid=SM1&MessageStatus=partially_delivered")
    assert isinstance(ignored, Ignored) and "unknown status" in ignored.reason
    [short_code] = parse_twilio_webhook(b"MessageSid=SM2&From=72345&Body=STOP&SmsStatus=received")
    assert isinstance(short_code, InboundMessage) and short_code.contact.provider_contact_id == "72345"


@pytest.mark.parametrize(("body", "code"), [
    (b"not json", "invalid_json"),
    (json.dumps({"Subject": "no sender", "TextBody": "x"}).encode(), "bad_shape"),
    (json.dumps({"RecordType": "Bounce", "Type": "HardBounce"}).encode(), "bad_shape"),  # no MessageID
])
def test_malformed_email_bodies(body: bytes, code: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_email_webhook(body)
    assert info.value.code == code


def test_email_fallbacks() -> None:
    [m] = parse_email_webhook(json.dumps({"From": "Anna <Anna@Example.TEST>", "MessageID": "pm-1",
                                          "TextBody": "hi", "Date": "garbage"}).encode())
    assert isinstance(m, InboundMessage)
    assert (m.provider_message_id, m.contact.provider_contact_id, m.contact.display_name) == (
        "postmark:pm-1", "anna@example.test", "Anna")
    long_id = "<" + "x" * 300 + "@example.test>"
    assert message_ids(f"{long_id} <b@c>")[0].startswith("<sha256.") and message_ids("<b@c> junk") == ("<b@c>",)
    assert (reply_subject("Order"), reply_subject("RE: Order"), reply_subject(None)) == ("Re: Order", "RE: Order", None)
    [other] = parse_email_webhook(json.dumps({"RecordType": "SubscriptionChange", "MessageID": "x"}).encode())
    assert isinstance(other, Ignored)


def test_a_copy_of_our_own_mail_is_ignored() -> None:
    body = json.dumps({"From": "Support@Shop.test", "MessageID": "pm-9", "TextBody": "our reply"}).encode()
    [item] = parse_email_webhook(body, own_address="support@shop.test")
    assert isinstance(item, Ignored) and item.kind == "own_mail"
