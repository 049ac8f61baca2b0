"""The connectors' error hierarchy and their capability ports (small protocols a connector has or not)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from switchboard.types import InboundMessage, OutboundRequest, ParsedItem, Provider, SendResult

if TYPE_CHECKING:
    from connectors.media import StoredMedia


class Closing:
    """``with thing: ...`` calls ``thing.close()`` on the way out (connectors, clients)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class ConnectorError(Exception):
    """Base of every connector error. ``code`` is the platform's own error code, kept verbatim."""

    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = dict(details or {})

    def __str__(self) -> str:
        prefix = f"[{self.code}] " if self.code else ""
        return f"{prefix}{self.message}"


class SignatureError(ConnectorError):
    """The webhook signature is missing or does not match the body."""


class PayloadError(ConnectorError):
    """The webhook body is not valid JSON or not of a shape this connector knows."""


class RetryableError(ConnectorError):
    """Try again later: rate limit, timeout, 5xx. ``retry_after`` in seconds when the platform says."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """The platform's rate limit was hit (WhatsApp 130429/131056, Telegram FloodWait...)."""


class PermanentError(ConnectorError):
    """Will not succeed on retry: invalid recipient, outside the messaging window, bad token..."""


class AuthenticationError(PermanentError):
    """The channel's credentials are invalid or expired (WhatsApp/Graph error 190)."""


class OutsideWindowError(PermanentError):
    """Outside the 24-hour customer-service window: a template (or HUMAN_AGENT tag) is needed."""


class UnknownOutcomeError(ConnectorError):
    """The request may have reached the platform but no answer came back (a read/write timeout, a reset
    connection after the request was written): the message may have been sent. Never retried blindly:
    ``retry_is_safe`` only when the platform deduplicates on our idempotency key (Telegram's
    ``random_id``); otherwise the send waits for the platform's report or a person
    (``docs/delivery.md``). Errors before anything was sent (connect refused, connect/pool timeout)
    are :class:`RetryableError`, not this."""

    def __init__(self, message: str, *, retry_is_safe: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_is_safe = retry_is_safe


class AlreadySent(ConnectorError):
    """The platform refuses the send because it already has a message with this idempotency key
    (Telegram: ``RANDOM_ID_DUPLICATE``): an earlier attempt went out, so the message is sent."""


# --- capability ports ------------------------------------------------------------------------------
#
# A connector is any object with a ``provider`` and ``close()``; what else it can do is declared in
# the registry (:mod:`connectors.registry`), one capability per small protocol below. Callers ask
# ``supports(provider, CAPABILITY)`` or get the typed port with ``port(connector, CAPABILITY)``;
# nobody sniffs with isinstance/getattr.


class Connector(Protocol):
    """What every connector has: its provider and the connections it may hold."""

    @property
    def provider(self) -> Provider: ...

    def close(self) -> None:
        """Release HTTP connections / sessions."""
        ...


WEBHOOK_URL_HEADER = "x-switchboard-webhook-url"
"""A pseudo-header the receiver puts into the headers it gives :meth:`ReceivesWebhooks.verify_signature`:
the public URL the platform called (``PUBLIC_BASE_URL`` + path + query string), for platforms that sign
the URL (Twilio) or carry a token in it (email). The receiver always overwrites it, so a client cannot
choose it (it is not kept with the stored delivery)."""


class ReceivesWebhooks(Connector, Protocol):
    """Platforms that push events to our receiver (WhatsApp, Messenger, Instagram, the sandbox, Twilio,
    email)."""

    def verify_signature(self, raw_body: bytes, headers: Mapping[str, str]) -> None:
        """Raise SignatureError unless the body is signed with this channel's secret (``headers`` holds
        :data:`WEBHOOK_URL_HEADER` when called by the receiver)."""
        ...

    def verify_challenge(self, params: Mapping[str, str]) -> str:
        """Answer the platform's GET subscription check (``hub.challenge``) or raise SignatureError."""
        ...

    def parse_webhook(self, raw_body: bytes) -> Sequence[ParsedItem]:
        """Turn one webhook body into domain items; raise PayloadError for malformed bodies."""
        ...


class Sends(Connector, Protocol):
    def send(self, request: OutboundRequest) -> SendResult:
        """Send one message; raise RetryableError or PermanentError (with the platform's code)."""
        ...


class FetchesMedia(Connector, Protocol):
    def fetch_media(self, media: MediaRef, dest_dir: Path, *, max_bytes: int) -> StoredMedia:
        """Download one attachment's file under ``dest_dir`` (size/type checked, content addressed)."""
        ...


class PullsHistory(Connector, Protocol):
    def pull_history(self, since_cursor: str | None, *, page_size: int = 25
                     ) -> tuple[list[InboundMessage], str | None]:
        """Messages newer than the cursor, oldest first, and the cursor to store for next time."""
        ...

    def history_pending(self, cursor: str | None) -> bool:
        """True when the cursor stopped mid-way (a page limit): pull again."""
        ...


class MarksRead(Connector, Protocol):
    def mark_read(self, recipient_id: str, provider_message_id: str) -> None:
        """Tell the customer we read their message (blue ticks / seen)."""
        ...

    def show_typing(self, recipient_id: str, provider_message_id: str) -> None:
        """Show a typing indicator to the customer (WhatsApp ties it to their last message)."""
        ...


class ListsTemplates(Connector, Protocol):
    def list_templates(self) -> list[MessageTemplate]:
        """The account's approved-or-not message templates (for messages outside the 24 h window)."""
        ...


class ChecksIdentity(Connector, Protocol):
    def check_identity(self) -> Identity:
        """One cheap call that proves the credentials work: who the platform says this account is.
        Raises AuthenticationError for refused credentials (or another ConnectorError)."""
        ...


class ReportsTokenExpiry(Connector, Protocol):
    def token_expiry(self) -> datetime | None:
        """When the access token stops working (None: it does not expire); AuthenticationError if it is
        no longer valid."""
        ...


@dataclass(frozen=True, slots=True)
class Identity:
    """What a connection test found: the platform's id and name of the account."""

    account_id: str
    name: str | None = None

    def describe(self) -> str:
        return f"{self.name} ({self.account_id})" if self.name else self.account_id


@dataclass(frozen=True, slots=True)
class MediaRef:
    """Which file to fetch: the platform's media id and, for platforms that fetch by message
    (Telegram, ``"<chat id>:<message id>"``; Twilio, the message sid), the message's key."""

    provider_media_id: str | None
    provider_message_id: str | None = None
    # a file that came inside the webhook (email attachments): its base64 content and declared type
    inline: str | None = None
    mime_type: str | None = None


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    name: str
    language: str
    status: str  # APPROVED, PENDING, REJECTED, PAUSED, DISABLED
    category: str | None = None
    components: tuple[dict[str, Any], ...] = ()


P = TypeVar("P", bound=Connector, covariant=True)


@dataclass(frozen=True)
class Capability(Generic[P]):
    """One ability a connector may have; typed by its port protocol (``port(c, SEND)`` is a ``Sends``)."""

    name: str


WEBHOOKS: Capability[ReceivesWebhooks] = Capability("webhooks")
SEND: Capability[Sends] = Capability("send")
MEDIA: Capability[FetchesMedia] = Capability("media")
HISTORY: Capability[PullsHistory] = Capability("history")
READ_RECEIPTS: Capability[MarksRead] = Capability("read receipts and typing")
TEMPLATES: Capability[ListsTemplates] = Capability("templates")
IDENTITY: Capability[ChecksIdentity] = Capability("connection test")
TOKEN_EXPIRY: Capability[ReportsTokenExpiry] = Capability("token expiry")
CAPABILITIES: tuple[Capability[Any], ...] = (WEBHOOKS, SEND, MEDIA, HISTORY, READ_RECEIPTS, TEMPLATES, IDENTITY,
                                             TOKEN_EXPIRY)


class Unsupported(PermanentError):
    """The channel's platform has no such capability (e.g. webhooks for a Telegram account)."""
