"""Map a REST API's error answer to the connector error hierarchy (Twilio, Postmark; the Graph API has
its own richer table in :mod:`connectors.graph`), keeping the platform's code and message."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import httpx

from connectors.base import (
    AuthenticationError,
    ConnectorError,
    PermanentError,
    RateLimited,
    RetryableError,
    UnknownOutcomeError,
)

# Failures after the request may have been written: the platform may have acted on it. (ConnectError,
# ConnectTimeout and PoolTimeout happen before anything is sent: they stay retryable.)
MAYBE_SENT = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError,
              httpx.WriteError)


def transport_error(exc: httpx.TransportError, what: str, *, once: bool) -> ConnectorError:
    """The error for a request that got no answer. ``once``: the request delivers something to a person
    (a message send): a failure after it may have reached the platform is an
    :class:`~connectors.base.UnknownOutcomeError` (never retried blindly, docs/delivery.md); otherwise,
    and for failures before anything was sent, a :class:`~connectors.base.RetryableError`."""
    if isinstance(exc, MAYBE_SENT) and once:
        return UnknownOutcomeError(f"no answer from {what} after the request was sent ({exc!r}): the message "
                                   "may have been sent", code="unknown_outcome")
    if isinstance(exc, httpx.TimeoutException):
        return RetryableError(f"timeout calling {what}: {exc!r}", code="timeout")
    return RetryableError(f"network error calling {what}: {exc!r}", code="network")


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (None when absent or not a number)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_http_error(response: httpx.Response, *, code_field: str, message_field: str,
                        rate_codes: Collection[int] = (), auth_codes: Collection[int] = ()) -> ConnectorError:
    """429 or a rate code → RateLimited; 401 or an auth code → AuthenticationError; 5xx → RetryableError;
    any other 4xx → PermanentError. ``code`` is the platform's code (``http_<status>`` without one)."""
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    error: dict[str, Any] = payload if isinstance(payload, dict) else {}
    raw_code = error.get(code_field)
    code_int = int(str(raw_code)) if str(raw_code or "").isdigit() else None
    message = str(error.get(message_field) or response.reason_phrase or f"HTTP {status}")
    kw: dict[str, Any] = {"code": str(raw_code) if raw_code is not None else f"http_{status}", "status": status,
                          "details": error}
    if status == 429 or code_int in rate_codes:
        return RateLimited(message, retry_after=retry_after(response), **kw)
    if status == 401 or code_int in auth_codes:
        return AuthenticationError(message, **kw)
    if status >= 500:
        return RetryableError(message, retry_after=retry_after(response), **kw)
    return PermanentError(message, **kw)
