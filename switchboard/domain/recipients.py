"""Who a new conversation may be started with, per platform, pure: the recipient an agent typed,
checked and put in the form the platform identifies people by.

* **WhatsApp** (and the sandbox, which speaks its API): a phone number with its country code
  (``+49 151 2345 6789``, ``0049…``), validated with ``phonenumbers`` and normalised to E.164
  (``+4915123456789``); the platform's contact id (``wa_id``) is the E.164 number without the ``+``.
* **Telegram**: ``@username`` (a contact the account already knows by that name) or a numeric chat id.
* **Messenger / Instagram**: a page cannot message a person first; only a person who already wrote
  (their page-scoped id, PSID/IGSID) can be written to.
* **SMS (Twilio)**: a phone number as for WhatsApp; Twilio's contact id is the E.164 number *with* its ``+``.
* **Email**: an address (``Name <a@b.example>`` accepted), lowercased: the contact id.

:func:`parse_recipient` answers with a :class:`Recipient` or raises InvalidInput with a sentence an
agent understands. No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr

import phonenumbers

from switchboard.domain.messaging_window import TAG_PROVIDERS, TEMPLATE_PROVIDERS, label
from switchboard.errors import InvalidInput

PHONE_PROVIDERS = TEMPLATE_PROVIDERS
_USERNAME = re.compile(r"^@?([A-Za-z][A-Za-z0-9_]{3,31})$")
_CHAT_ID = re.compile(r"^-?\d{1,20}$")
_PAGE_SCOPED_ID = re.compile(r"^\d{1,30}$")
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\\\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


@dataclass(frozen=True, slots=True)
class Recipient:
    """A checked recipient: the platform's contact id when it is known from the input alone
    (phone numbers, Telegram ids, PSIDs), else the Telegram ``username`` to look up."""

    provider: str
    provider_contact_id: str | None
    phone: str | None = None  # E.164
    username: str | None = None  # Telegram, without the @

    @property
    def shown(self) -> str:
        return self.phone or (f"@{self.username}" if self.username else self.provider_contact_id or "")


def normalise_phone(raw: str) -> str:
    """A phone number with its country code, as E.164 (``+4915123456789``); InvalidInput otherwise."""
    text = (raw or "").strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        raise InvalidInput(f"{raw!r} is not an international phone number: start it with + and the "
                           "country code, e.g. +49 151 23456789")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise InvalidInput(f"{raw!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"{raw!r} is not a valid phone number (check the country code and the "
                           "number of digits)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_recipient(provider: str, raw: str) -> Recipient:
    """The recipient an agent typed for a new conversation on ``provider``, checked."""
    text = (raw or "").strip()
    if not text:
        raise InvalidInput("enter who to write to")
    if provider in PHONE_PROVIDERS:
        phone = normalise_phone(text)
        return Recipient(provider, phone.removeprefix("+"), phone=phone)
    if provider == "twilio":
        phone = normalise_phone(text)
        return Recipient(provider, phone, phone=phone)
    if provider == "email":
        address = parseaddr(text)[1].strip().lower()
        if not address or len(address) > 254 or not _EMAIL.match(address):
            raise InvalidInput(f"{raw!r} is not an email address")
        return Recipient(provider, address)
    if provider == "telegram":
        if _CHAT_ID.match(text):
            return Recipient(provider, text)
        m = _USERNAME.match(text)
        if m is None:
            raise InvalidInput(f"{raw!r} is neither a Telegram @username (5–32 letters, digits or _) nor "
                               "a numeric chat id")
        return Recipient(provider, None, username=m.group(1))
    if provider in TAG_PROVIDERS:
        if not _PAGE_SCOPED_ID.match(text):
            raise InvalidInput(f"{label(provider)} cannot message a person first: pick a contact who "
                               "already wrote to this page")
        return Recipient(provider, text)
    raise InvalidInput(f"starting conversations on {label(provider)} is not supported")
