"""Shared HTTP helpers for the Meta connectors: httpx clients, webhook signatures, Graph errors.

Everything here is platform-generic for Meta (WhatsApp Cloud API, Messenger, Instagram): the
``X-Hub-Signature-256`` HMAC over the raw body, the ``hub.challenge`` verification handshake and the
classification of Graph API errors into the connector error hierarchy (codes kept verbatim).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from connectors.base import (
    AuthenticationError,
    ConnectorError,
    OutsideWindowError,
    PayloadError,
    PermanentError,
    RateLimited,
    RetryableError,
    SignatureError,
)

DEFAULT_GRAPH_BASE_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v21.0"
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)

# Graph / WhatsApp error codes, grouped by what a caller should do about them.
RATE_LIMIT_CODES = frozenset({
    4,        # application request limit reached
    17,       # user request limit reached
    32,       # page request limit reached
    613,      # calls to this api have exceeded the rate limit
    80007,    # WhatsApp business account rate limit
    130429,   # WhatsApp: throughput (messages per second) reached
    131048,   # WhatsApp: spam rate limit hit
    131056,   # WhatsApp: pair rate limit (too many messages to one user)
})
OUTSIDE_WINDOW_CODES = frozenset({131047})  # WhatsApp: re-engagement message (24 h window)
OUTSIDE_WINDOW_SUBCODES = frozenset({2018278, 2534022})  # Messenger/Instagram: outside allowed window
AUTH_CODES = frozenset({190, 102, 0})  # 190 expired/invalid token, 102 session, 0 WhatsApp AuthException
TRANSIENT_CODES = frozenset({
    1,        # unknown error, try again
    2,        # service temporarily unavailable
    131000,   # something went wrong
    131016,   # service unavailable
    133004,   # server temporarily unavailable
    1200,     # Messenger: temporary send message failure
})


def make_client(base_url: str = DEFAULT_GRAPH_BASE_URL, *,
                timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> httpx.Client:
    """A sync client for one platform account: bounded timeouts, no redirects to surprise hosts."""
    return httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, follow_redirects=True,
                        headers={"User-Agent": "switchboard/0.1"})


# --- webhook signatures ---------------------------------------------------------------------------

def sign_body(app_secret: str, raw_body: bytes, *, algorithm: str = "sha256") -> str:
    """The header value Meta sends: ``sha256=<hex HMAC(app_secret, raw_body)>``."""
    digest = hmac.new(app_secret.encode(), raw_body, getattr(hashlib, algorithm)).hexdigest()
    return f"{algorithm}={digest}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_meta_signature(raw_body: bytes, headers: Mapping[str, str], app_secret: str, *,
                          allow_sha1: bool = False) -> None:
    """Check ``X-Hub-Signature-256`` (or, when allowed, the legacy sha1 ``X-Hub-Signature``).

    Constant-time comparison over the raw bytes; raises :class:`SignatureError` with a reason.
    """
    if not app_secret:
        raise SignatureError("channel has no app_secret configured; cannot verify webhook signatures",
                             code="no_secret")
    candidates: list[tuple[str, str]] = []
    sig256 = _header(headers, "X-Hub-Signature-256")
    if sig256:
        candidates.append(("sha256", sig256))
    elif allow_sha1:
        sig1 = _header(headers, "X-Hub-Signature")
        if sig1:
            candidates.append(("sha1", sig1))
    if not candidates:
        expected = "X-Hub-Signature-256" + (" or X-Hub-Signature" if allow_sha1 else "")
        raise SignatureError(f"missing {expected} header", code="missing_signature")
    algorithm, value = candidates[0]
    prefix = f"{algorithm}="
    if not value.startswith(prefix):
        raise SignatureError(f"malformed signature header: expected '{prefix}<hex>'",
                             code="malformed_signature")
    expected_value = sign_body(app_secret, raw_body, algorithm=algorithm)
    if not hmac.compare_digest(expected_value.encode(), value.strip().lower().encode()):
        raise SignatureError("signature does not match the body", code="bad_signature")


def verify_meta_challenge(params: Mapping[str, str], verify_token: str) -> str:
    """The GET handshake: ``hub.mode=subscribe`` and our verify token -> echo ``hub.challenge``."""
    mode = params.get("hub.mode")
    token = params.get("hub.verify_token") or ""
    challenge = params.get("hub.challenge")
    if mode != "subscribe":
        raise SignatureError(f"hub.mode must be 'subscribe', got {mode!r}", code="bad_mode")
    if not verify_token or not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise SignatureError("hub.verify_token does not match this channel's verify token",
                             code="bad_verify_token")
    if not challenge:
        raise SignatureError("hub.challenge is missing", code="missing_challenge")
    return challenge


def load_json_object(raw_body: bytes) -> dict[str, Any]:
    """Decode a webhook body; anything but a JSON object is a :class:`PayloadError`."""
    try:
        data = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise PayloadError(f"body must be a JSON object, got {type(data).__name__}", code="not_object")
    return data


# --- Graph errors ---------------------------------------------------------------------------------

def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_graph_error(response: httpx.Response) -> ConnectorError:
    """Map a non-2xx Graph response to the connector error hierarchy, keeping code and message."""
    status = response.status_code
    error: dict[str, Any] = {}
    try:
        payload = response.json()
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            error = payload["error"]
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    raw_code = error.get("code")
    try:
        code_int: int | None = int(raw_code) if raw_code is not None else None
    except (TypeError, ValueError):
        code_int = None
    subcode = error.get("error_subcode")
    try:
        subcode_int: int | None = int(subcode) if subcode is not None else None
    except (TypeError, ValueError):
        subcode_int = None
    details = error.get("error_data") or {}
    detail_text = details.get("details") if isinstance(details, dict) else None
    message = str(error.get("message") or response.reason_phrase or f"HTTP {status}")
    if detail_text and detail_text not in message:
        message = f"{message}: {detail_text}"
    code = str(raw_code) if raw_code is not None else f"http_{status}"
    kw: dict[str, Any] = {"code": code, "status": status, "details": error}
    retry_after = _retry_after(response)

    if code_int in RATE_LIMIT_CODES or status == 429:
        return RateLimited(message, retry_after=retry_after, **kw)
    if code_int in OUTSIDE_WINDOW_CODES or subcode_int in OUTSIDE_WINDOW_SUBCODES:
        return OutsideWindowError(message, **kw)
    if code_int in AUTH_CODES or status == 401:
        return AuthenticationError(message, **kw)
    if code_int in TRANSIENT_CODES or status >= 500:
        return RetryableError(message, retry_after=retry_after, **kw)
    return PermanentError(message, **kw)


def graph_call(client: httpx.Client, method: str, url: str, *, token: str | None = None,
               json_body: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
               files: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None,
               ) -> dict[str, Any]:
    """One Graph request; returns the JSON object or raises a classified :class:`ConnectorError`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = client.request(method, url, json=json_body, params=params, files=files, data=data,
                                  headers=headers)
    except httpx.TimeoutException as exc:
        raise RetryableError(f"timeout calling {method} {url}: {exc!r}", code="timeout") from None
    except httpx.TransportError as exc:
        raise RetryableError(f"network error calling {method} {url}: {exc!r}", code="network") from None
    if response.status_code >= 400:
        raise classify_graph_error(response)
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RetryableError(f"{method} {url} answered {response.status_code} with a non-JSON body",
                             code="bad_response", status=response.status_code) from None
    if not isinstance(payload, dict):
        raise PermanentError(f"{method} {url} answered with a JSON {type(payload).__name__}, not an object",
                             code="bad_response", status=response.status_code)
    if isinstance(payload.get("error"), dict):  # some Graph edges answer 200 with an error object
        raise classify_graph_error(httpx.Response(400, json=payload, request=response.request))
    return payload
