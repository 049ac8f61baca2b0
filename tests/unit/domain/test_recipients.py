"""Recipients of a new conversation, per platform (switchboard/domain/recipients.py)."""

from __future__ import annotations

import pytest

from switchboard.domain.recipients import normalise_phone, parse_recipient
from switchboard.errors import InvalidInput


@pytest.mark.parametrize(("raw", "e164"), [("+49 151 23456789", "+4915123456789"),
                                           ("0049 (151) 234-56789", "+4915123456789"),
                                           ("+1 415 555 2671", "+14155552671")])
def test_phone_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize("raw", ["015123456789", "+49 1", "+999 123", "phone", ""])
def test_bad_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_phone(raw)


def test_whatsapp_contact_id_is_the_number_without_plus() -> None:
    r = parse_recipient("whatsapp", "+49 151 23456789")
    assert (r.provider_contact_id, r.phone, r.shown) == ("4915123456789", "+4915123456789", "+4915123456789")
    assert parse_recipient("sandbox", "+14155552671").provider_contact_id == "14155552671"


def test_telegram_takes_usernames_and_ids() -> None:
    assert parse_recipient("telegram", "@Ana_Lima").username == "Ana_Lima"
    assert parse_recipient("telegram", "Ana_Lima").username == "Ana_Lima"
    assert parse_recipient("telegram", "-100123").provider_contact_id == "-100123"
    with pytest.raises(InvalidInput, match="neither"):
        parse_recipient("telegram", "@a b")


@pytest.mark.parametrize("provider", ["messenger", "instagram"])
def test_meta_pages_only_take_page_scoped_ids(provider: str) -> None:
    assert parse_recipient(provider, "12345").provider_contact_id == "12345"
    with pytest.raises(InvalidInput, match="cannot message a person first"):
        parse_recipient(provider, "+49 151 23456789")


def test_sms_numbers_keep_their_plus_as_twilio_contact_id() -> None:
    r = parse_recipient("twilio", "+1 (415) 555-2671")
    assert (r.provider_contact_id, r.phone) == ("+14155552671", "+14155552671")
    with pytest.raises(InvalidInput, match="international phone number"):
        parse_recipient("twilio", "415 555 2671")


@pytest.mark.parametrize("raw", ["Ann@Example.COM", " Ann Smith <ann@example.com> "])
def test_email_addresses_are_lowercased_contact_ids(raw: str) -> None:
    assert parse_recipient("email", raw).provider_contact_id == "ann@example.com"


@pytest.mark.parametrize("raw", ["ann", "ann@example", "ann smith@example.com", "<>", "a@b..com"])
def test_bad_email_addresses_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput, match="not an email address"):
        parse_recipient("email", raw)
