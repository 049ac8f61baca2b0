"""HTTP hardening shared by everything `switchboard serve` answers (webhooks, /health, the API).

* :class:`SecurityHeaders` — every response carries ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer``, frame denial (``X-Frame-Options: DENY`` and CSP
  ``frame-ancestors 'none'``), a Content-Security-Policy (nothing may load, except what the interactive
  API docs page needs under :data:`DOCS_PREFIXES`) and, when the request came over HTTPS (directly or
  through a proxy uvicorn trusts, ``--forwarded-allow-ips``), ``Strict-Transport-Security``.
* :func:`allowed_hosts` — the ``Host`` values accepted (``ALLOWED_HOSTS``, or the host of
  ``PUBLIC_BASE_URL`` plus localhost); Starlette's ``TrustedHostMiddleware`` answers others with 400.
* :class:`BadSignatureThrottle` — an address that keeps sending webhooks with bad signatures is answered
  429 (with ``Retry-After``) for a while, without its bodies being verified or stored.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI / ReDoc as FastAPI serves them: its script and stylesheet from jsDelivr, an inline bootstrap
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
            "https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
DOCS_PREFIXES = ("/api/docs", "/api/redoc")
HSTS = "max-age=31536000; includeSubDomains"

_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"), (b"cross-origin-opener-policy", b"same-origin")]


def security_headers(path: str, scheme: str) -> list[tuple[bytes, bytes]]:
    """The headers every response to ``path`` carries (raw ASGI form): the list above, the CSP for that
    path, HSTS over HTTPS. One place for :class:`SecurityHeaders` and the receiver's webhook fast path."""
    csp = DOCS_CSP if path.startswith(DOCS_PREFIXES) else CSP
    extra = [*_HEADERS, (b"content-security-policy", csp.encode())]
    if scheme == "https":
        extra.append((b"strict-transport-security", HSTS.encode()))
    return extra


_HOST_NAME = re.compile(r"[a-z0-9.-]+")


def host_matcher(hosts: Sequence[str]) -> Callable[[bytes | None], bool]:
    """``Host`` header -> accepted by the rule of Starlette's ``TrustedHostMiddleware`` for ``hosts``
    (exact names, ``*.example.com`` wildcards, ``*`` = any). Conservative: a value it cannot read
    plainly (an IPv6 literal, odd characters) is answered False, and the caller then leaves the request to
    the middleware, which decides."""
    patterns = [h.lower() for h in hosts]
    if "*" in patterns:
        return lambda header: True
    exact = {p for p in patterns if not p.startswith("*")}
    suffixes = tuple(p[1:] for p in patterns if p.startswith("*."))

    def accepted(header: bytes | None) -> bool:
        if header is None:
            return False
        host = header.decode("latin-1").lower()
        name, _, port = host.partition(":")
        if not _HOST_NAME.fullmatch(name) or (port and not port.isdigit()):
            return False
        return name in exact or (bool(suffixes) and name.endswith(suffixes))

    return accepted


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response (set unless the app already chose)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(str(scope.get("path", "")), str(scope.get("scheme", "")))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in extra if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def allowed_hosts(configured: str | None, public_base_url: str) -> list[str]:
    """``ALLOWED_HOSTS`` (comma separated, ``*`` = any) or the public URL's host plus local names."""
    if configured and configured.strip():
        return [h.strip() for h in configured.split(",") if h.strip()]
    public = urlsplit(public_base_url).hostname
    return sorted({h for h in (public, "localhost", "127.0.0.1", "::1") if h})


class BadSignatureThrottle:
    """Per client address: more than ``limit`` bad signatures within ``window`` seconds → refuse that
    address (429) until the window has room again. Kept per receiver process (each process refuses a
    flood on its own; a platform never sends bad signatures, so nothing legitimate is slowed down)."""

    def __init__(self, limit: int = 20, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
        return times

    def retry_after(self, client: str | None) -> int:
        """Seconds until this address is heard again (0: it is not refused)."""
        if client is None:
            return 0
        with self._lock:
            now = self._clock()
            times = self._recent(client, now)
            if len(times) < self.limit:
                return 0
            return max(1, math.ceil(times[len(times) - self.limit] + self.window - now))

    def failed(self, client: str | None) -> None:
        if client is None:
            return
        with self._lock:
            now = self._clock()
            self._recent(client, now)
            self._failures.setdefault(client, deque()).append(now)
            if len(self._failures) > 100_000:  # a spoofed-address flood must not eat the memory
                self._failures.clear()
