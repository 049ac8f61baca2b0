"""`switchboard serve`: the webhook receiver and `GET /health`.

Every delivery is verified over the raw bytes and stored in `webhook_events` (committed) before the
platform gets its 200; parsing into conversations happens later in the `process-webhooks` flow, so
a slow or failing parser never makes a platform retry or lose a delivery.

| case | answer | stored |
|---|---|---|
| unknown webhook key | 404 | no |
| body over the size limit | 413 | no |
| bad or missing signature | 401 | as REJECTED with the reason (first 4 KiB) |
| not JSON | 400 | as REJECTED with the reason |
| good | 200 | as RECEIVED |
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connectors.base import ConnectorError, SignatureError
from pipelines.channels import ConnectorCache
from switchboard.services import runs, webhooks
from switchboard.services.channels import channel_by_webhook_key
from switchboard.uow import UnitOfWork

log = logging.getLogger(__name__)

REJECTED_BODY_LIMIT = 4096
NOTIFY_CHANNEL = "webhook_events"


class _ChannelLookup:
    """webhook key -> channel id, cached for a short time (keys are immutable, channels rarely added)."""

    def __init__(self, engine: Engine, ttl: float = 30.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, int | None]] = {}

    def channel_id(self, provider: str, key: str) -> int | None:
        now = time.monotonic()
        hit = self._cache.get((provider, key))
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        with UnitOfWork(self.engine) as uow:
            ch = channel_by_webhook_key(uow, provider, key)
        cid = ch.id if ch is not None else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[(provider, key)] = (now, cid)
        return cid


def create_app(engine: Engine, secret_key: bytes, *, max_body_bytes: int = 1_000_000) -> Starlette:
    lookup = _ChannelLookup(engine)
    connectors = ConnectorCache(engine, secret_key)

    def _store(provider: str, channel_id: int | None, body: bytes, headers: dict[str, str],
               status: str, reason: str | None) -> int:
        with UnitOfWork(engine) as uow:
            return webhooks.store_event(uow, provider=provider, channel_id=channel_id, body=body,
                                        headers=headers, status=status, reason=reason,
                                        notify=NOTIFY_CHANNEL if status == "RECEIVED" else None)

    async def verify(request: Request) -> Response:
        provider, key = request.path_params["provider"], request.path_params["key"]
        channel_id = await run_in_threadpool(lookup.channel_id, provider, key)
        if channel_id is None:
            return PlainTextResponse("unknown webhook", status_code=404)
        _, connector = await run_in_threadpool(connectors.get, channel_id)
        try:
            challenge = connector.verify_challenge(dict(request.query_params))  # type: ignore[attr-defined]
        except ConnectorError as exc:
            return PlainTextResponse(f"verification failed: {exc}", status_code=403)
        return PlainTextResponse(challenge)

    async def receive(request: Request) -> Response:
        provider, key = request.path_params["provider"], request.path_params["key"]
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return PlainTextResponse("payload too large", status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                return PlainTextResponse("payload too large", status_code=413)
        channel_id = await run_in_threadpool(lookup.channel_id, provider, key)
        if channel_id is None:
            return PlainTextResponse("unknown webhook", status_code=404)
        headers = dict(request.headers)
        _, connector = await run_in_threadpool(connectors.get, channel_id)
        try:
            connector.verify_signature(body, headers)
        except SignatureError as exc:
            await run_in_threadpool(_store, provider, channel_id, body[:REJECTED_BODY_LIMIT], headers,
                                    "REJECTED", f"bad signature: {exc}")
            return PlainTextResponse("invalid signature", status_code=401)
        try:
            json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            await run_in_threadpool(_store, provider, channel_id, body, headers, "REJECTED",
                                    f"malformed JSON: {exc}")
            return PlainTextResponse("malformed JSON", status_code=400)
        await run_in_threadpool(_store, provider, channel_id, body, headers, "RECEIVED", None)
        return PlainTextResponse("ok")

    async def health(request: Request) -> Response:
        def check() -> dict[str, Any]:
            out: dict[str, Any] = {"status": "ok"}
            try:
                with UnitOfWork(engine) as uow:
                    uow.session.execute(text("select 1"))
                    out["database"] = "ok"
                    out["webhook_backlog"] = webhooks.backlog(uow)
                    out["flows"] = {
                        r.name: {
                            "status": r.status,
                            "started_at": r.started_at.isoformat(),
                            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                            "error": r.error,
                        }
                        for r in runs.last_runs(uow)
                    }
            except Exception as exc:  # health must answer, whatever broke
                out["status"] = "error"
                out["database"] = f"error: {exc.__class__.__name__}: {exc}"
            return out

        result = await run_in_threadpool(check)
        return JSONResponse(result, status_code=200 if result["status"] == "ok" else 503)

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/webhooks/{provider}/{key}", verify, methods=["GET"]),
            Route("/webhooks/{provider}/{key}", receive, methods=["POST"]),
        ],
        on_shutdown=[connectors.close],
    )
    return app



def app_from_settings() -> Starlette:
    """Factory for `uvicorn --factory` (several worker processes): settings from the environment."""
    from switchboard.db.engine import make_engine
    from switchboard.settings import get_settings

    settings = get_settings()
    return create_app(make_engine(pool_size=8, max_overflow=8), settings.secret_key_bytes(),
                      max_body_bytes=settings.receiver_max_body_bytes)
