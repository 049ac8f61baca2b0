"""Value types that cross the boundary between connectors and the domain.

Connectors parse platform payloads into these frozen dataclasses; the ingest services take them.
They never carry ORM rows. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Self

Provider = Literal["telegram", "whatsapp", "messenger", "instagram", "sandbox", "twilio", "email"]
DeliveryStatus = Literal["SENT", "DELIVERED", "READ", "FAILED"]
AuthorKind = Literal["customer", "agent", "bot", "system"]


@dataclass(frozen=True, slots=True)
class ContactRef:
    """The customer as the platform identifies them."""

    provider_contact_id: str
    display_name: str | None = None
    username: str | None = None
    phone: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    kind: str  # image | video | audio | document | sticker | location | contacts | file
    mime_type: str | None = None
    provider_media_id: str | None = None
    url: str | None = None
    file_name: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # e.g. latitude/longitude, caption


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message from the customer (or, with ``direction='OUTBOUND'``, an echo sent natively)."""

    provider_message_id: str
    contact: ContactRef
    sent_at: datetime
    body: str | None
    content_type: str = "text"  # text | image | ... | reaction | interactive | location | unsupported
    attachments: tuple[AttachmentRef, ...] = ()
    reply_to_provider_message_id: str | None = None
    direction: Literal["INBOUND", "OUTBOUND"] = "INBOUND"
    author_kind: AuthorKind = "customer"
    raw: dict[str, Any] = field(default_factory=dict)
    # the provider message ids this message continues, most specific first (email: In-Reply-To, then
    # References newest first): when one is a message of the channel, it joins that message's
    # conversation even if another address sent it (a colleague in Cc answering the thread)
    thread_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """The platform reports progress of an outbound message."""

    provider_message_id: str
    status: DeliveryStatus
    occurred_at: datetime
    recipient_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReadWatermark:
    """Everything sent to ``contact`` up to ``watermark`` was delivered or read (Messenger/Instagram)."""

    provider_contact_id: str
    status: Literal["DELIVERED", "READ"]
    watermark: datetime
    occurred_at: datetime
    provider_message_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageEdit:
    provider_message_id: str
    new_body: str | None
    edited_at: datetime
    provider_contact_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageDeletion:
    provider_message_id: str
    deleted_at: datetime
    provider_contact_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed payload with nothing to ingest (system/account updates): stored with its reason."""

    reason: str
    kind: str = "ignored"
    raw: dict[str, Any] = field(default_factory=dict)


ParsedItem = InboundMessage | StatusUpdate | ReadWatermark | MessageEdit | MessageDeletion | Ignored


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """What the outbox asks a connector to send."""

    recipient_id: str
    body: str | None = None
    attachments: tuple[AttachmentRef, ...] = ()
    template: dict[str, Any] | None = None
    reply_to_provider_message_id: str | None = None
    idempotency_key: str | None = None
    tag: str | None = None  # Messenger HUMAN_AGENT etc.


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str
    sent_at: datetime
    raw: dict[str, Any] = field(default_factory=dict)


Role = Literal["admin", "manager", "agent"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling a service. Built by the entry point from the logged-in session (or the CLI)."""

    user_id: int
    organization_id: int
    role: Role
    email: str = ""
    is_system: bool = False
    # an HTTP API key (``api_key_id`` set): it may do exactly what its scopes grant, on its channels
    # (``channel_ids``; None = every channel of the organization); :mod:`switchboard.policy` decides
    api_key_id: int | None = None
    scopes: frozenset[str] = frozenset()
    channel_ids: frozenset[int] | None = None

    @classmethod
    def system(cls, organization_id: int, name: str = "system") -> Actor:
        """The organization's system actor, for flows and the CLI: every action, no user row."""
        return cls(user_id=0, organization_id=organization_id, role="admin", email=name, is_system=True)

    @classmethod
    def for_api_key(cls, api_key_id: int, organization_id: int, prefix: str, scopes: frozenset[str],
                    channel_ids: frozenset[int] | None) -> Actor:
        """An API key's actor: no user row; its ``role`` grants nothing (the policy reads its scopes)."""
        return cls(user_id=0, organization_id=organization_id, role="agent", email=f"api key {prefix}",
                   api_key_id=api_key_id, scopes=scopes, channel_ids=channel_ids)

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    @property
    def is_manager(self) -> bool:
        """Admins and managers see every channel of their organization; an API key acts for the
        organization, so the conversation rules treat it like a manager (its scopes limit it)."""
        return self.role in ("admin", "manager") or self.is_api_key

    @property
    def acting_user_id(self) -> int | None:
        """The user to name in events and audit entries (None for the system actor and API keys)."""
        return None if self.is_system or self.is_api_key else self.user_id


@dataclass
class RunStats:
    """Base of the counters a workflow run returns: :meth:`add` sums another round's counters into these
    (numbers are added, lists joined), so a long-polling flow reports the total of its rounds."""

    def add(self, other: Self) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
