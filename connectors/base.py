"""The one small protocol every platform connector implements, and its error hierarchy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from switchboard.types import OutboundRequest, ParsedItem, Provider, SendResult


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


@runtime_checkable
class Connector(Protocol):
    """What the pipelines and the receiver need from a platform."""

    provider: Provider

    def verify_signature(self, raw_body: bytes, headers: Mapping[str, str]) -> None:
        """Raise SignatureError unless the body is signed with this channel's secret."""
        ...

    def verify_challenge(self, params: Mapping[str, str]) -> str:
        """Answer the platform's GET subscription check (``hub.challenge``) or raise SignatureError."""
        ...

    def parse_webhook(self, raw_body: bytes) -> Sequence[ParsedItem]:
        """Turn one webhook body into domain items; raise PayloadError for malformed bodies."""
        ...

    def send(self, request: OutboundRequest) -> SendResult:
        """Send one message; raise RetryableError or PermanentError (with the platform's code)."""
        ...

    def close(self) -> None:
        """Release HTTP connections."""
        ...
