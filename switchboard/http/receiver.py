"""`switchboard serve`: the webhook receiver, `GET /health` and the HTTP API (mounted at `/api`,
:mod:`switchboard.http.api`).

Every delivery is verified over the raw bytes and stored in `webhook_events` (committed) before the
platform gets its 200; parsing into conversations happens later in the `process-webhooks` flow, so
a slow or failing parser never makes a platform retry or lose a delivery.

| case | answer | stored |
|---|---|---|
| unknown webhook key | 404 | no |
| removed channel | 410 | no |
| body over the size limit | 413 | no |
| bad or missing signature | 401 | as REJECTED with the reason (first 4 KiB) |
| an address with too many bad signatures lately | 429 + Retry-After | no |
| not well-formed (JSON; a form for Twilio) | 400 | as REJECTED with the reason |
| good | 200 | as RECEIVED |

The hot path is fully async: deliveries that arrive together are written by a *group commit*
(:class:`DeliveryWriter`): one multi-row INSERT and one commit for everything queued at that moment,
each request answered only after its row is committed.

Every response carries the security headers of :mod:`switchboard.http.security`; a request for a host
name that is not ours is answered 400 (``ALLOWED_HOSTS``). Deliveries (``POST /webhooks/…``) are
answered by a raw ASGI fast path in front of the Starlette app — the same rules (host, headers, the table
above) without its middleware and routing layers, a quarter of the receiver's CPU per delivery;
anything it does not plainly accept goes through the Starlette app, which decides.

The connector's ``verify_signature`` gets the request's headers plus the pseudo-header
``x-switchboard-webhook-url`` (:data:`~connectors.base.WEBHOOK_URL_HEADER`): the public URL the
platform called, ``PUBLIC_BASE_URL`` + path + query (Twilio signs it; email channels may carry a token
in it). Behind a proxy the URL the receiver sees differs from the public one; this one does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.base import WEBHOOK_URL_HEADER, WEBHOOKS, ConnectorError, ReceivesWebhooks, SignatureError
from connectors.registry import port, supports, webhook_body_error
from switchboard.http.api import create_api
from switchboard.http.security import (
    BadSignatureThrottle,
    SecurityHeaders,
    allowed_hosts,
    host_matcher,
    security_headers,
)
from switchboard.services import runs, webhooks
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import freeze_startup_objects

log = logging.getLogger(__name__)

REJECTED_BODY_LIMIT = 4096
NOTIFY_CHANNEL = "webhook_events"
Row = tuple[str, int | None, bytes, dict[str, str], str, str | None]
Answer = tuple[int, str, Sequence[tuple[bytes, bytes]]]  # status, plain text, extra headers
TOO_LARGE: Answer = (413, "payload too large", ())
RETRY_LATER: Sequence[tuple[bytes, bytes]] = ((b"retry-after", b"5"),)
T = TypeVar("T")


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    u = make_url(sqlalchemy_url).set(drivername="postgresql")
    return u.render_as_string(hide_password=False)


class DeliveryWriter:
    """Group commit: deliveries that arrive together are stored by one statement (one round trip, one
    commit) and each request is answered once its row is committed.

    ``connections`` long-lived connections each run a loop: wait for a delivery, take everything
    queued behind it (up to ``max_batch``), store it, answer those requests. Under load a batch grows
    while the previous ones are being committed; alone, a delivery is written at once. A connection
    that fails fails its batch (those requests get 503, so the platform sends them again) and is
    opened anew; a pool serves the rare channel look-ups. One connection by default: at 3,000
    deliveries/s two gave the same latency and cost PostgreSQL 10-15 % more CPU per delivery (smaller
    group commits; docs/operations.md).
    """

    def __init__(self, dsn: str, *, max_batch: int = 500, connections: int = 1) -> None:
        self.dsn = dsn
        self.max_batch = max_batch
        self.connections = connections
        self.pool: asyncpg.Pool | None = None
        self._queue: asyncio.Queue[tuple[Row, asyncio.Future[None]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self.connections)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while not self._queue.empty():  # nobody is left to store them: those requests are not answered 200
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("the receiver is stopping"))
        if self.pool is not None:
            await self.pool.close()

    async def write(self, row: Row) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((row, fut))
        await fut

    async def _run(self) -> None:
        con: asyncpg.Connection | None = None
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                try:
                    if con is None or con.is_closed():
                        con = await asyncpg.connect(self.dsn, timeout=10)
                    await webhooks.store_events_batch(con, [r for r, _ in batch], notify=NOTIFY_CHANNEL)
                except asyncio.CancelledError:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(RuntimeError("the receiver is stopping"))
                    raise
                except Exception as exc:
                    log.warning("storing %d deliveries failed: %s: %s", len(batch), exc.__class__.__name__, exc)
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    if con is not None:
                        con.terminate()  # its state is unknown: the next batch opens a new one
                        con = None
                    await asyncio.sleep(0.05)  # a database that is down is not hammered in a tight loop
                else:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_result(None)
        finally:
            if con is not None:
                con.terminate()

    async def channel(self, provider: str, key: str) -> tuple[int, str] | None:
        assert self.pool is not None
        async with self.pool.acquire() as con:
            return await webhooks.channel_for_key(con, provider, key)


class _Once:
    """At most one running task per key; concurrent callers share it (a look-up, a cache refresh), so
    a cache entry that expires under load costs one database read, not one per request in flight."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[Any]] = {}

    def __call__(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(make())
            self._running[key] = running
            running.add_done_callback(lambda done: self._finished(key, done))
        return running

    def _finished(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        self._running.pop(key, None)
        if not done.cancelled() and done.exception() is not None:  # retrieved even if nobody waited: logged
            log.warning("%s failed: %s: %s", key, done.exception().__class__.__name__, done.exception())


class _KeyCache:
    """webhook key -> (channel id, status) for a short time (keys are immutable; channels are rarely
    added or removed: a removal is answered 410 within ``ttl`` seconds)."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._items: dict[tuple[str, str], tuple[float, tuple[int, str] | None]] = {}

    def get(self, provider: str, key: str) -> tuple[bool, tuple[int, str] | None]:
        hit = self._items.get((provider, key))
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return True, hit[1]
        return False, None

    def put(self, provider: str, key: str, channel: tuple[int, str] | None) -> None:
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[(provider, key)] = (time.monotonic(), channel)


def public_url(scope: Scope, public_base_url: str | None) -> str:
    """The URL the platform called: ``public_base_url`` + path + query (the request's own URL without one)."""
    if not public_base_url:
        return str(URL(scope=scope))
    raw_query: bytes = scope.get("query_string", b"")
    query = f"?{raw_query.decode('latin-1')}" if raw_query else ""
    return f"{public_base_url.rstrip('/')}{scope['path']}{query}"


def create_app(engine: Engine, secret_key: bytes, *, max_body_bytes: int = 1_000_000,
               public_base_url: str | None = None, hosts: Sequence[str] = ("*",),
               throttle: BadSignatureThrottle | None = None) -> ASGIApp:
    throttle = throttle or BadSignatureThrottle()
    writer = DeliveryWriter(asyncpg_dsn(engine.url.render_as_string(hide_password=False)))
    keys = _KeyCache()
    connectors = ConnectorCache(engine, secret_key, public_base_url=public_base_url)

    once = _Once()

    async def channel_id(provider: str, key: str) -> int | Answer:
        """The channel's id, or the answer for a webhook URL that names no working channel: 404 for an
        unknown one, 410 Gone for a removed one (a paused channel's deliveries are still stored)."""
        if not supports(provider, WEBHOOKS):  # e.g. Telegram: pulled, never pushed to us
            return 404, "unknown webhook", ()
        found, channel = keys.get(provider, key)
        if not found:
            channel = await asyncio.shield(once(("webhook key look-up", provider, key),
                                                lambda: writer.channel(provider, key)))
            keys.put(provider, key, channel)
        if channel is None:
            return 404, "unknown webhook", ()
        if channel[1] == "removed":
            return 410, "this channel was removed", ()
        return channel[0]

    async def connector(cid: int) -> ReceivesWebhooks:
        """The channel's connector from the cache. When its time is up, ONE refresh runs (a database
        read, decrypting the credentials, a new HTTP client: milliseconds) while requests keep using
        the one they had; only the very first request of a channel waits for it. (Every request
        refreshing at once stalled the receiver for 0.4-1 s every 30 s at 3,000 deliveries/s.)"""
        cached = connectors.peek(cid)
        if cached is not None:
            return port(cached, WEBHOOKS)
        refresh = once(("connector refresh of channel", cid), lambda: run_in_threadpool(connectors.get, cid))
        stale = connectors.peek_stale(cid)
        if stale is not None:
            return port(stale, WEBHOOKS)
        return port((await asyncio.shield(refresh))[1], WEBHOOKS)

    async def verify(request: Request) -> Response:
        provider, key = request.path_params["provider"], request.path_params["key"]
        cid = await channel_id(provider, key)
        if isinstance(cid, tuple):
            return PlainTextResponse(cid[1], status_code=cid[0])
        conn = await connector(cid)
        try:
            challenge = conn.verify_challenge(dict(request.query_params))
        except ConnectorError as exc:
            return PlainTextResponse(f"verification failed: {exc}", status_code=403)
        return PlainTextResponse(challenge)

    async def store(row: Row, answer: Answer) -> Answer:
        """``answer`` once ``row`` is committed; 503 if it could not be (the database is down: the
        platform sends the delivery again; the cause is in the log, never in the answer)."""
        try:
            await writer.write(row)
        except Exception:
            return 503, "the delivery could not be stored; send it again", RETRY_LATER
        return answer

    async def accept(provider: str, key: str, scope: Scope, receive: Receive) -> Answer:
        """One delivery, from the raw ASGI request to the answer of the table in the module's docstring."""
        client = scope["client"][0] if scope.get("client") else None
        wait = throttle.retry_after(client)
        if wait:
            return 429, "too many bad signatures from this address", ((b"retry-after", str(wait).encode()),)
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # the first of repeated headers, as Starlette's Headers
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return TOO_LARGE
        body = await read_body(receive, max_body_bytes)
        if body is None:
            return TOO_LARGE
        cid = await channel_id(provider, key)
        if isinstance(cid, tuple):
            return cid
        headers[WEBHOOK_URL_HEADER] = public_url(scope, public_base_url)  # overwrites any client value
        conn = await connector(cid)
        try:
            conn.verify_signature(body, headers)
        except SignatureError as exc:
            throttle.failed(client)
            return await store((provider, cid, body[:REJECTED_BODY_LIMIT], headers, "REJECTED",
                                f"bad signature: {exc}"), (401, "invalid signature", ()))
        problem = webhook_body_error(provider, body)
        if problem is not None:
            return await store((provider, cid, body, headers, "REJECTED", problem),
                               (400, problem.split(":", 1)[0], ()))
        return await store((provider, cid, body, headers, "RECEIVED", None), (200, "ok", ()))

    async def receive_route(request: Request) -> Response:
        """The same as the fast path below, for what reaches the router (a request the fast path left to
        the middleware's host check)."""
        try:
            status, text_, extra = await accept(request.path_params["provider"], request.path_params["key"],
                                                request.scope, request.receive)
        except _Disconnected:
            return Response(status_code=400)  # nobody is listening
        return PlainTextResponse(text_, status_code=status, headers={k.decode(): v.decode() for k, v in extra})

    async def health(request: Request) -> Response:
        def check() -> dict[str, Any]:
            out: dict[str, Any] = {"status": "ok"}
            try:
                with UnitOfWork(engine) as uow:
                    uow.session.execute(text("select 1"))
                    out["database"] = "ok"
                    out["webhook_backlog"] = webhooks.backlog(uow)
                    # anyone who reaches the receiver may read this: statuses and times only, never a
                    # run's error (it can name an organization's channel or customer); operators read
                    # the errors with `switchboard status`, admins on Channels & health
                    out["flows"] = {
                        r.name: {
                            "status": r.status,
                            "started_at": r.started_at.isoformat(),
                            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                        }
                        for r in runs.last_runs(uow)
                    }
            except Exception as exc:  # health must answer, whatever broke (the reason goes to the log only)
                log.warning("health: database check failed: %s: %s", exc.__class__.__name__, exc)
                out["status"] = "error"
                out["database"] = f"error: {exc.__class__.__name__}"
            return out

        result = await run_in_threadpool(check)
        return JSONResponse(result, status_code=200 if result["status"] == "ok" else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await writer.start()
        # everything imported so far (the API's models, the connectors) lives as long as the process:
        # out of the collector's sight, its full collections no longer pause a request for the time
        # it takes to walk them again
        freeze_startup_objects()
        try:
            yield
        finally:
            await writer.stop()
            connectors.close()

    routed = Starlette(
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders), Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))],
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/webhooks/{provider}/{key}", verify, methods=["GET"]),
            Route("/webhooks/{provider}/{key}", receive_route, methods=["POST"]),
            Mount("/api", app=create_api(engine, secret_key)),
        ],
    )
    host_ok = host_matcher(hosts)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        """Deliveries (``POST /webhooks/{provider}/{key}`` to one of our host names) are answered here
        directly: at thousands per second Starlette's middleware and routing layers cost a good part of
        the receiver's CPU. Everything else, and any request this does not plainly accept, goes through
        the Starlette app (security headers, host check, routes, the API), which decides."""
        if scope["type"] == "http" and scope["method"] == "POST":
            parts = scope["path"].split("/")
            if (len(parts) == 4 and parts[1] == "webhooks" and parts[2] and parts[3] and not scope.get("root_path")
                    and host_ok(_header(scope, b"host"))):
                try:
                    status, text_, extra = await accept(parts[2], parts[3], scope, receive)
                except _Disconnected:
                    return
                except Exception:
                    log.exception("a webhook delivery to %s failed", scope["path"])
                    status, text_, extra = 500, "Internal Server Error", ()
                await _send_plain(send, scope, status, text_, extra)
                return
        await routed(scope, receive, send)

    return app


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body, or None once it is over ``limit`` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class _Disconnected(Exception):
    """The client went away before its body was read: nothing is stored, nothing is answered."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None


async def _send_plain(send: Send, scope: Scope, status: int, text_: str, extra: Sequence[tuple[bytes, bytes]]) -> None:
    """A plain-text answer as Starlette's ``PlainTextResponse`` sends it, with the security headers."""
    body = text_.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               *extra, *security_headers(scope["path"], scope.get("scheme", "http"))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def app_from_settings() -> ASGIApp:
    """Factory for `uvicorn --factory` (several worker processes): settings from the environment."""
    from switchboard.db.engine import make_engine
    from switchboard.settings import get_settings

    settings = get_settings()
    return create_app(make_engine(pool_size=4, max_overflow=8), settings.secret_key_bytes(),
                      max_body_bytes=settings.receiver_max_body_bytes, public_base_url=settings.public_base_url,
                      hosts=allowed_hosts(settings.allowed_hosts, settings.public_base_url))
