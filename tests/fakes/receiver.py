"""A minimal webhook receiver for connector tests: verifies signatures with a real connector.

Not the product's receiver (``switchboard serve``); just enough to observe what a platform fake
posts: every accepted body is parsed and kept, in arrival order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from connectors.base import ConnectorError, SignatureError


class WebhookSink:
    def __init__(self, connector: Any, *, fail_first: int = 0) -> None:
        self.connector = connector
        self.items: list[Any] = []
        self.bodies: list[bytes] = []
        self.rejected: list[str] = []
        self.fail_first = fail_first
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["GET", "POST"])])

    async def _hook(self, request: Request) -> Response:
        if request.method == "GET":
            try:
                return PlainTextResponse(self.connector.verify_challenge(dict(request.query_params)))
            except SignatureError as exc:
                return PlainTextResponse(str(exc), status_code=403)
        raw = await request.body()
        with self._lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                return PlainTextResponse("temporarily down", status_code=503)
        try:
            self.connector.verify_signature(raw, dict(request.headers))
        except SignatureError as exc:
            self.rejected.append(str(exc))
            return PlainTextResponse(str(exc), status_code=401)
        try:
            items = self.connector.parse_webhook(raw)
        except ConnectorError as exc:
            self.rejected.append(str(exc))
            return PlainTextResponse(str(exc), status_code=400)
        with self._lock:
            self.bodies.append(raw)
            self.items.extend(items)
        return PlainTextResponse("ok")

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 10.0) -> list[Any]:
        """Poll until ``predicate(items)`` holds; returns a snapshot of the items."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                snapshot = list(self.items)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s; got {len(snapshot)} items: {snapshot!r}"[:3000])
            time.sleep(0.01)
