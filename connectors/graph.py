"""The one Graph API client of the Meta connectors (WhatsApp Cloud API, Messenger, Instagram).

:class:`GraphClient` owns the versioned base URL, the bearer token, the httpx client (its own, or
one the caller shares and closes) and the mapping of Graph errors to the connector error hierarchy
(:func:`classify_graph_error`: codes kept verbatim; every error is a
:class:`~connectors.base.ConnectorError`). It is context-managed: ``with GraphClient(...) as g``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.base import (
    AuthenticationError,
    Closing,
    ConnectorError,
    Identity,
    OutsideWindowError,
    PermanentError,
    RateLimited,
    RetryableError,
)
from connectors.http import client as http_client
from connectors.http_errors import retry_after as retry_after_seconds
from connectors.http_errors import transport_error
from connectors.signatures import verify_meta_challenge
from switchboard.clock import Clock, utcnow
from switchboard.types import Provider

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
    return http_client(base_url=base_url.rstrip("/"), timeout=timeout, follow_redirects=True,
                       headers={"User-Agent": "switchboard/0.1"})


# --- errors --------------------------------------------------------------------------------------

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
    retry_after = retry_after_seconds(response)

    if code_int in RATE_LIMIT_CODES or status == 429:
        return RateLimited(message, retry_after=retry_after, **kw)
    if code_int in OUTSIDE_WINDOW_CODES or subcode_int in OUTSIDE_WINDOW_SUBCODES:
        return OutsideWindowError(message, **kw)
    if code_int in AUTH_CODES or status == 401:
        return AuthenticationError(message, **kw)
    if code_int in TRANSIENT_CODES or status >= 500:
        return RetryableError(message, retry_after=retry_after, **kw)
    return PermanentError(message, **kw)



# --- the client ----------------------------------------------------------------------------------

class GraphClient(Closing):
    """Calls to one Graph API version with one access token."""

    def __init__(self, *, token: str, api_base_url: str = DEFAULT_GRAPH_BASE_URL,
                 api_version: str = DEFAULT_GRAPH_VERSION, http: httpx.Client | None = None,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> None:
        self._token = token
        self.base = f"{api_base_url.rstrip('/')}/{api_version.strip('/')}"
        self._api_base_url = api_base_url
        self._timeout = timeout
        self._owns_http = http is None
        self._http = http
        self._http_lock = threading.Lock()
        self._closed = False

    @property
    def http(self) -> httpx.Client:
        """The HTTP client, made on first use: a connector that only checks webhook signatures (the
        receiver's) never makes one."""
        if self._http is None:
            with self._http_lock:
                if self._closed:
                    raise RuntimeError("this Graph client was closed")
                if self._http is None:
                    self._http = make_client(self._api_base_url, timeout=self._timeout)
        return self._http

    @property
    def token(self) -> str:
        return self._token

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def url(self, path: str) -> str:
        """``path`` under the versioned base; absolute URLs (paging ``next`` links) are kept."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base}/{path.lstrip('/')}"

    def call(self, method: str, path: str, *, json_body: Mapping[str, Any] | None = None,
             params: Mapping[str, Any] | None = None, files: Mapping[str, Any] | None = None,
             data: Mapping[str, Any] | None = None, once: bool = False) -> dict[str, Any]:
        """One request; returns the JSON object or raises a classified :class:`ConnectorError`.

        ``once``: the request delivers something to a person (a message send) and must not be repeated
        blindly: a failure after it may have reached the platform raises :class:`UnknownOutcomeError`."""
        url = self.url(path)
        try:
            response = self.http.request(method, url, json=json_body, params=params, files=files, data=data,
                                         headers=self.auth_headers)
        except httpx.TransportError as exc:
            raise transport_error(exc, f"{method} {url}", once=once) from None
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

    def close(self) -> None:
        with self._http_lock:
            self._closed = True
            if self._owns_http and self._http is not None:
                self._http.close()


class GraphAccount(Closing):
    """What the WhatsApp and Messenger/Instagram connectors share: one account on the Graph API (its
    client), the app secret and verify token of its webhooks, a clock for send times, the lifecycle."""

    provider: Provider

    def __init__(self, *, provider: Provider, token: str, app_secret: str, verify_token: str = "",
                 api_base_url: str = DEFAULT_GRAPH_BASE_URL, api_version: str = DEFAULT_GRAPH_VERSION,
                 http: httpx.Client | None = None, clock: Clock = utcnow,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> None:
        self.provider = provider
        self._app_secret = app_secret
        self._verify_token = verify_token
        self._clock = clock
        self.graph = GraphClient(token=token, api_base_url=api_base_url, api_version=api_version, http=http,
                                 timeout=timeout)

    def verify_challenge(self, params: Mapping[str, str]) -> str:
        return verify_meta_challenge(params, self._verify_token)

    def identity_object(self) -> str:
        """The Graph object a connection test reads (a phone number id, ``me`` for a page token)."""
        return "me"

    def check_identity(self) -> Identity:
        """``GET /{object}``: the cheapest call that needs a working token (capability ``IDENTITY``)."""
        found = self.graph.call("GET", self.identity_object(),
                                params={"fields": "id,name,verified_name,display_phone_number"})
        name = found.get("verified_name") or found.get("name")
        number = found.get("display_phone_number")
        label = f"{name} {number}" if name and number else (name or number)
        return Identity(str(found.get("id") or self.identity_object()), str(label) if label else None)

    def token_expiry(self) -> datetime | None:
        """``GET /debug_token?input_token=…`` (capability ``TOKEN_EXPIRY``): the earlier of the token's
        ``expires_at`` and ``data_access_expires_at`` (0 means never); AuthenticationError when Meta
        says the token is no longer valid."""
        data = self.graph.call("GET", "debug_token", params={"input_token": self.graph.token}).get("data")
        if not isinstance(data, dict):
            raise ConnectorError("debug_token answered without data", code="bad_response")
        if data.get("is_valid") is False:
            error = data["error"] if isinstance(data.get("error"), dict) else {}
            raise AuthenticationError(str(error.get("message") or "the access token is no longer valid"),
                                      code=str(error.get("code") or 190))
        moments = []
        for field in ("expires_at", "data_access_expires_at"):
            try:
                value = int(data.get(field) or 0)
            except (TypeError, ValueError):
                raise ConnectorError(f"debug_token: {field} is not a unix time", code="bad_response") from None
            if value > 0:
                moments.append(value)
        return datetime.fromtimestamp(min(moments), tz=UTC) if moments else None

    def close(self) -> None:
        self.graph.close()
