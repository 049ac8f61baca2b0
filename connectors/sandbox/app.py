"""The sandbox: a local server that speaks the WhatsApp Cloud API contract.

Switchboard's real WhatsApp connector talks to it unchanged (only ``api_base_url`` differs):

* ``POST /{version}/{phone_number_id}/messages`` -- send (text/media/template) or mark read (with a
  ``typing_indicator``: shown typing; both kept in ``GET /_sandbox/state``); checks
  the bearer token and answers like Graph; then posts signed ``sent``/``delivered``/``read`` status
  webhooks to ``config.webhook_url`` with realistic delays (divided by ``config.speed``).
* ``GET /{version}/{waba_id}/message_templates`` -- the template catalogue (Graph paging); template
  sends are checked against it (132001 unknown/unapproved, 132000 parameter counts) and free text
  outside the customer's 24 h window is refused (131047), unless the config turns that off.
* ``POST /{version}/{phone_number_id}/media`` (multipart upload, listed in the state's ``uploads``),
  ``GET /{version}/{media_id}``
  (media url) and ``GET /_sandbox/media/{media_id}`` (bytes, bearer required).
* simulated customers (see :mod:`connectors.sandbox.customers`).
* SMS (when ``config.sms_auth_token`` is set): the Twilio Messages API mounted under ``/twilio``
  (:mod:`connectors.sandbox.twilio`; a ``twilio`` channel's ``api_base_url`` is ``{sandbox}/twilio``),
  its simulated SMS customers writing to ``config.sms_webhook_url``, and ``GET /twilio/_sandbox/sent``.
* control endpoints for tests and the demo under ``/_sandbox/`` and ``GET /health``: fault injection
  (``POST /_sandbox/fail-next``: errors, 429/5xx storms with Retry-After, slow answers, accepted sends
  whose answer comes too late) and the count of sends per idempotency key (``GET /_sandbox/keys``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import random
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from connectors.sandbox.config import SandboxConfig
from connectors.sandbox.payloads import encode_signed, inbound_message_body, new_wamid, status_body
from connectors.sandbox.templates import TemplateRefused, check_template_send
from connectors.sandbox.twilio import SandboxSms

log = logging.getLogger("switchboard.sandbox")

_VERSION_RE = re.compile(r"^v\d+(\.\d+)?$")
_PHONE_RE = re.compile(r"^\+?\d{5,20}$")
WINDOW_SECONDS = 24 * 3600


def graph_error(status: int, code: int, message: str, *, type_: str = "OAuthException",
                subcode: int | None = None, details: str | None = None,
                retry_after: float | None = None) -> JSONResponse:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code,
                             "fbtrace_id": "SBX" + secrets.token_hex(8)}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return JSONResponse({"error": error}, status_code=status, headers=headers)


@dataclass
class _Delivery:
    url: str
    raw: bytes
    headers: dict[str, str]
    done: asyncio.Future[int | None]
    attempts: int = 0


@dataclass
class SentRecord:
    id: str
    to: str
    type: str
    body: str | None
    payload: dict[str, Any]
    received_at: float
    statuses: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "to": self.to, "type": self.type, "body": self.body, "payload": self.payload,
                "received_at": self.received_at, "statuses": list(self.statuses)}


class SandboxPlatform:
    """State and behaviour of one sandbox phone number; lives in the server's event loop."""

    kind = "whatsapp"

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.sent: list[SentRecord] = []
        self.sent_by_id: dict[str, SentRecord] = {}
        self.marked_read: list[str] = []
        self.typing: list[str] = []  # message ids a typing indicator was shown with
        self.uploads: list[dict[str, Any]] = []  # media uploaded by the business (id, mime type, size)
        self.inbound: list[dict[str, Any]] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.last_inbound_at: dict[str, float] = {p.lstrip("+"): at for p, at in config.known_customers.items()}
        self.fail_next: list[dict[str, Any]] = []
        self.webhooks_delivered = 0
        self.webhooks_failed = 0
        self.last_webhook_error: str | None = None
        self.started_at = time.time()
        self._queue: asyncio.Queue[_Delivery] | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._delivered_events: dict[str, asyncio.Event] = {}
        self.simulation: Any = None  # CustomerSimulation, set in start()
        self.sms: SandboxSms | None = SandboxSms(self) if config.sms_auth_token else None

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        from connectors.sandbox.customers import CustomerSimulation

        self._queue = asyncio.Queue()
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0))
        self.spawn(self._deliver_forever())
        self.simulation = CustomerSimulation(self)
        self.simulation.start()
        if self.sms is not None:
            seed = None if self.config.seed is None else self.config.seed + 1
            self.sms.simulation = CustomerSimulation(self, self.sms, count=self.config.sms_customers, seed=seed)
            self.sms.simulation.start()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sandbox task failed", exc_info=task.exception())

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time (divided by the speed factor)."""
        await asyncio.sleep(max(0.0, seconds) / self.config.speed)

    @staticmethod
    def new_phone(rng: random.Random) -> str:
        return f"1555{rng.randint(1_000_000, 9_999_999)}"

    # --- webhooks to Switchboard ------------------------------------------------------------------
    def post_webhook(self, body: dict[str, Any]) -> asyncio.Future[int | None]:
        """Queue one signed webhook; the future resolves to the final HTTP status (None: gave up)."""
        return self.deliver(self.config.webhook_url, *encode_signed(body, self.config.app_secret))

    def deliver(self, url: str, raw: bytes, headers: dict[str, str]) -> asyncio.Future[int | None]:
        """Queue one signed body for ``url`` (retried like the platform does)."""
        assert self._queue is not None, "sandbox not started"
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Delivery(url, raw, headers, done))
        return done

    async def _deliver_forever(self) -> None:
        assert self._queue is not None and self._client is not None
        while True:
            item = await self._queue.get()
            status: int | None = None
            while item.attempts < self.config.webhook_max_attempts:
                item.attempts += 1
                if not item.url:
                    break
                try:
                    response = await self._client.post(item.url, content=item.raw,
                                                       headers=item.headers)
                    status = response.status_code
                    if status == 200:
                        break
                    self.last_webhook_error = f"HTTP {status}: {response.text[:200]}"
                    if 400 <= status < 500 and status not in (408, 429):
                        break  # the receiver refused this body; retrying will not help
                except httpx.HTTPError as exc:
                    status = None
                    self.last_webhook_error = repr(exc)
                # Meta retries with growing delays; scaled by speed so tests stay fast
                await self.sleep(min(60.0, 0.5 * 2 ** item.attempts))
            if status == 200:
                self.webhooks_delivered += 1
            else:
                self.webhooks_failed += 1
                log.warning("sandbox webhook gave up after %s attempts: %s", item.attempts,
                            self.last_webhook_error)
            if not item.done.done():
                item.done.set_result(status)

    # --- customer -> Switchboard ------------------------------------------------------------------
    def customer_writes(self, *, phone: str, name: str | None, text: str | None = None,
                        image: tuple[bytes, str, str | None] | None = None,
                        reply_to: str | None = None) -> tuple[str, asyncio.Future[int | None]]:
        """An inbound message from ``phone``; returns (wamid, delivery future)."""
        wamid = new_wamid()
        now = time.time()
        image_obj: dict[str, Any] | None = None
        if image is not None:
            data, mime, caption = image
            media_id = self.store_media(data, mime)
            image_obj = {"mime_type": mime, "sha256": hashlib.sha256(data).hexdigest(), "id": media_id}
            if caption:
                image_obj["caption"] = caption
        body = inbound_message_body(phone_number_id=self.config.phone_number_id,
                                    display_phone_number=self.config.display_phone_number,
                                    from_phone=phone, name=name, wamid=wamid, timestamp=int(now),
                                    text=text, image=image_obj, reply_to=reply_to)
        self.last_inbound_at[phone] = now
        self.inbound.append({"id": wamid, "from": phone, "name": name, "text": text,
                             "image": image_obj, "at": now})
        return wamid, self.post_webhook(body)

    def store_media(self, data: bytes, mime: str) -> str:
        media_id = str(10**15 + secrets.randbelow(9 * 10**15))
        self.media[media_id] = (data, mime)
        return media_id

    # --- Switchboard -> customer ------------------------------------------------------------------
    def _status(self, record: SentRecord, status: str, error: dict[str, Any] | None = None) -> None:
        record.statuses.append(status)
        self.post_webhook(status_body(
            phone_number_id=self.config.phone_number_id,
            display_phone_number=self.config.display_phone_number,
            wamid=record.id, status=status, recipient_id=record.to, timestamp=int(time.time()),
            biz_opaque_callback_data=record.payload.get("biz_opaque_callback_data"), error=error))

    def uniform(self, a: float, b: float) -> float:
        """A delay between ``a`` and ``b`` from the customers' seeded random source (the middle without it)."""
        return self.simulation.rng.uniform(a, b) if self.simulation is not None else (a + b) / 2

    async def _status_pipeline(self, record: SentRecord) -> None:
        uniform = self.uniform
        if record.to.lstrip("+").startswith(self.config.undeliverable_prefix):
            await self.sleep(uniform(0.2, 0.8))
            self._status(record, "failed", {
                "code": 131026, "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": {"details": "Recipient is not a valid WhatsApp user (sandbox)"}})
            return
        await self.sleep(uniform(0.1, 0.6))
        self._status(record, "sent")
        await self.sleep(uniform(0.3, 1.5))
        self._status(record, "delivered")
        self.delivered_event(record.id).set()
        customer = self.simulation.customer(record.to) if self.simulation is not None else None
        if customer is not None:
            customer.receive(record.id)
        else:
            await self.sleep(uniform(1.0, 5.0))
            self._status(record, "read")

    def delivered_event(self, wamid: str) -> asyncio.Event:
        return self._delivered_events.setdefault(wamid, asyncio.Event())

    async def customer_reads(self, wamids: list[str]) -> None:
        """Read receipts for messages a customer has seen (each after its `delivered`)."""
        for wamid in wamids:
            await self.delivered_event(wamid).wait()
            record = self.sent_by_id.get(wamid)
            if record is not None and "read" not in record.statuses:
                self._status(record, "read")

    def accept_send(self, payload: dict[str, Any], body: str | None = None) -> SentRecord:
        mtype = str(payload.get("type") or "text")
        inner = payload.get(mtype)
        if mtype == "text" and isinstance(inner, dict):
            body = inner.get("body")
        elif isinstance(inner, dict) and body is None:
            body = inner.get("caption") or inner.get("name")
        record = SentRecord(id=new_wamid(), to=str(payload["to"]).lstrip("+"), type=mtype, body=body,
                            payload=payload, received_at=time.time())
        self.sent.append(record)
        self.sent_by_id[record.id] = record
        if self.config.send_statuses:
            self.spawn(self._status_pipeline(record))
        return record


# --- HTTP handlers ---------------------------------------------------------------------------------

def _platform(request: Request) -> SandboxPlatform:
    platform: SandboxPlatform = request.app.state.platform
    return platform


def _check_auth(request: Request, platform: SandboxPlatform) -> JSONResponse | None:
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.query_params.get("access_token", "")
    if not token:
        return graph_error(401, 190, "An active access token must be used to query information "
                                     "about the current user.")
    if not hmac.compare_digest(token.encode(), platform.config.access_token.encode()):
        return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    return None


def _check_path(request: Request, platform: SandboxPlatform) -> JSONResponse | None:
    version = request.path_params.get("version", "")
    if not _VERSION_RE.match(version) or (platform.config.api_version
                                          and version != platform.config.api_version):
        return graph_error(400, 2500, f"Unknown path components: /{version}", type_="OAuthException")
    phone_id = request.path_params.get("phone_number_id")
    if phone_id is not None and phone_id != platform.config.phone_number_id:
        return graph_error(400, 100, f"Unsupported post request. Object with ID '{phone_id}' does not "
                                     "exist, cannot be loaded due to missing permissions, or does not "
                                     "support this operation.", type_="GraphMethodException", subcode=33)
    return None


def _invalid(message: str) -> JSONResponse:
    return graph_error(400, 100, f"(#100) {message}", type_="OAuthException")


async def messages_endpoint(request: Request) -> Response:
    platform = _platform(request)
    problem = _check_path(request, platform) or _check_auth(request, platform)
    if problem is not None:
        return problem
    try:
        payload = await request.json()
    except ValueError:
        return _invalid("The request body is not valid JSON")
    if not isinstance(payload, dict):
        return _invalid("The request body must be a JSON object")
    if payload.get("messaging_product") != "whatsapp":
        return _invalid("The parameter messaging_product is required and must be 'whatsapp'.")
    if payload.get("status") == "read":
        if not payload.get("message_id"):
            return _invalid("The parameter message_id is required.")
        platform.marked_read.append(str(payload["message_id"]))
        indicator = payload.get("typing_indicator")
        if indicator is not None:
            if not isinstance(indicator, dict) or indicator.get("type") != "text":
                return _invalid("Param typing_indicator['type'] must be 'text'.")
            platform.typing.append(str(payload["message_id"]))
        return JSONResponse({"success": True})
    forced = platform.fail_next.pop(0) if platform.fail_next else None
    if forced is not None and not forced.get("accept"):
        await asyncio.sleep(float(forced.get("delay") or 0))
        return graph_error(int(forced.get("status", 400)), int(forced["code"]),
                           str(forced.get("message") or f"Sandbox forced error {forced['code']}"),
                           details=forced.get("details"), retry_after=forced.get("retry_after"))
    to = str(payload.get("to") or "")
    if not _PHONE_RE.match(to):
        return _invalid("Invalid parameter 'to': expected a phone number in international format.")
    mtype = str(payload.get("type") or "text")
    inner = payload.get(mtype)
    if mtype not in ("text", "image", "video", "audio", "document", "sticker", "template", "location",
                     "contacts", "interactive", "reaction"):
        return _invalid(f"Param type '{mtype}' is not a valid message type.")
    if not isinstance(inner, dict):
        return _invalid(f"The parameter {mtype} is required.")
    if mtype == "text":
        text = inner.get("body")
        if not isinstance(text, str) or not text:
            return _invalid("The parameter text['body'] is required.")
        if len(text) > 4096:
            return _invalid("Param text['body'] must be at most 4096 characters long.")
    if mtype in ("image", "video", "audio", "document", "sticker"):
        if not inner.get("id") and not inner.get("link"):
            return _invalid(f"Param {mtype} must have an id or a link.")
        if inner.get("id") and str(inner["id"]) not in platform.media:
            return _invalid(f"Param {mtype}['id'] is not a valid media id.")
    if mtype == "template" and not inner.get("name"):
        return _invalid("The parameter template['name'] is required.")
    phone = to.lstrip("+")
    rendered: str | None = None
    if mtype == "template" and platform.config.enforce_templates:
        try:
            rendered = check_template_send(platform.config.templates, inner)
        except TemplateRefused as refused:
            return graph_error(400, refused.code, refused.title, details=refused.details)
    if platform.config.enforce_window and mtype not in ("template", "reaction"):
        last = platform.last_inbound_at.get(phone)
        if last is None or time.time() - last > WINDOW_SECONDS:
            return graph_error(400, 131047, "Re-engagement message", type_="OAuthException",
                               details="Message failed to send because more than 24 hours have passed "
                                       "since the customer last replied to this number.")
    record = platform.accept_send(payload, rendered)
    if forced is not None:  # accepted, but the answer is slow (past the client's timeout: unknown outcome)
        await asyncio.sleep(float(forced.get("delay") or 0))
    return JSONResponse({"messaging_product": "whatsapp",
                         "contacts": [{"input": to, "wa_id": phone}],
                         "messages": [{"id": record.id}]})


async def templates_endpoint(request: Request) -> Response:
    """``GET /{version}/{waba_id}/message_templates``: the catalogue, ``limit`` per page (default 25),
    ``after`` cursors and a ``next`` link like Graph's."""
    platform = _platform(request)
    problem = _check_path(request, platform) or _check_auth(request, platform)
    if problem is not None:
        return problem
    waba_id = request.path_params["waba_id"]
    if waba_id != platform.config.waba_id:
        return graph_error(400, 100, f"Unsupported get request. Object with ID '{waba_id}' does not exist, "
                                     "cannot be loaded due to missing permissions, or does not support this "
                                     "operation.", type_="GraphMethodException", subcode=33)
    try:
        limit = max(1, min(100, int(request.query_params.get("limit", "25"))))
        after = request.query_params.get("after")
        start = int(base64.urlsafe_b64decode(after.encode()).decode()) if after else 0
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return _invalid("Invalid paging parameters (limit, after).")
    templates = platform.config.templates
    data = [dict(t) for t in templates[start:start + limit]]
    paging: dict[str, Any] = {"cursors": {"before": _cursor(start), "after": _cursor(start + len(data) - 1)}}
    if start + limit < len(templates):
        paging["cursors"]["after"] = _cursor(start + limit)
        paging["next"] = str(request.url.include_query_params(limit=limit, after=_cursor(start + limit)))
    return JSONResponse({"data": data, "paging": paging})


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(str(max(index, 0)).encode()).decode()


async def upload_media_endpoint(request: Request) -> Response:
    platform = _platform(request)
    problem = _check_path(request, platform) or _check_auth(request, platform)
    if problem is not None:
        return problem
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return _invalid("The parameter file is required.")
    data = await upload.read()
    mime = str(form.get("type") or upload.content_type or "application/octet-stream")
    if form.get("messaging_product") != "whatsapp":
        return _invalid("The parameter messaging_product is required and must be 'whatsapp'.")
    media_id = platform.store_media(data, mime)
    platform.uploads.append({"id": media_id, "mime_type": mime, "size": len(data),
                             "file_name": upload.filename})
    return JSONResponse({"id": media_id})


async def debug_token_endpoint(request: Request) -> Response:
    """``GET /debug_token?input_token=…``: the sandbox's token never expires (``expires_at`` 0)."""
    platform = _platform(request)
    problem = _check_path(request, platform) or _check_auth(request, platform)
    if problem is not None:
        return problem
    valid = hmac.compare_digest(request.query_params.get("input_token", "").encode(),
                                platform.config.access_token.encode())
    return JSONResponse({"data": {"app_id": "sandbox", "type": "SYSTEM_USER", "is_valid": valid,
                                  "expires_at": 0, "data_access_expires_at": 0,
                                  "scopes": ["whatsapp_business_messaging"]}})


async def media_info_endpoint(request: Request) -> Response:
    platform = _platform(request)
    problem = _check_path(request, platform) or _check_auth(request, platform)
    if problem is not None:
        return problem
    media_id = request.path_params["media_id"]
    if media_id == platform.config.phone_number_id:  # GET /{phone-number-id}: a connection test
        return JSONResponse({"id": media_id, "verified_name": "Switchboard Sandbox",
                             "display_phone_number": "+1 555 0100", "quality_rating": "GREEN"})
    item = platform.media.get(media_id)
    if item is None:
        return graph_error(400, 100, f"Unsupported get request. Object with ID '{media_id}' does not exist.",
                           type_="GraphMethodException", subcode=33)
    data, mime = item
    url = str(request.url_for("media_bytes", media_id=media_id))
    return JSONResponse({"messaging_product": "whatsapp", "url": url, "mime_type": mime,
                         "sha256": hashlib.sha256(data).hexdigest(), "file_size": len(data), "id": media_id})


async def media_bytes_endpoint(request: Request) -> Response:
    platform = _platform(request)
    problem = _check_auth(request, platform)
    if problem is not None:
        return problem
    item = platform.media.get(request.path_params["media_id"])
    if item is None:
        return Response("not found", status_code=404)
    data, mime = item
    return Response(data, media_type=mime)


# --- control endpoints -----------------------------------------------------------------------------

async def control_inbound(request: Request) -> Response:
    platform = _platform(request)
    try:
        payload = await request.json()
    except ValueError:
        return JSONResponse({"error": "body must be JSON"}, status_code=400)
    if not isinstance(payload, dict):
        return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
    phone = str(payload.get("from") or "").lstrip("+")
    if not _PHONE_RE.match(phone):
        return JSONResponse({"error": "'from' must be a phone number (digits)"}, status_code=400)
    text = payload.get("text")
    if not isinstance(text, str) or not text:
        return JSONResponse({"error": "'text' must be a non-empty string"}, status_code=400)
    wamid, done = platform.customer_writes(phone=phone, name=payload.get("name"), text=text,
                                           reply_to=payload.get("reply_to"))
    wait = bool(payload.get("wait", True))
    status: int | None = None
    if wait:
        try:
            status = await asyncio.wait_for(asyncio.shield(done), timeout=float(payload.get("timeout", 10)))
        except TimeoutError:
            status = None
    return JSONResponse({"id": wamid, "delivered": status == 200, "status_code": status})


async def control_sent(request: Request) -> Response:
    platform = _platform(request)
    to = request.query_params.get("to")
    records = [r.as_json() for r in platform.sent if to is None or r.to == to.lstrip("+")]
    return JSONResponse({"messages": records})


async def control_state(request: Request) -> Response:
    platform = _platform(request)
    sim = platform.simulation
    return JSONResponse({
        "inbound": platform.inbound,
        "marked_read": platform.marked_read,
        "typing": platform.typing,
        "uploads": platform.uploads,
        "webhooks": {"delivered": platform.webhooks_delivered, "failed": platform.webhooks_failed,
                     "queued": platform._queue.qsize() if platform._queue is not None else 0,
                     "last_error": platform.last_webhook_error},
        "customers": (sim.describe() if sim is not None else [])
        + (platform.sms.simulation.describe() if platform.sms is not None and platform.sms.simulation else []),
        "sms_inbound": platform.sms.inbound if platform.sms is not None else [],
    })


async def control_fail_next(request: Request) -> Response:
    """Fault injection for the next ``count`` sends (``POST /_sandbox/fail-next``):

    * a Graph error: ``{"code": 130429, "status": 429, "retry_after": 2}`` (a 429 storm with a
      Retry-After header), ``{"code": 131000, "status": 503}`` (a 5xx storm);
    * ``"delay": seconds`` answers that late (past the client's timeout: the client gives up);
    * ``"accept": true`` takes the message (it is sent, with its status webhooks) and answers only after
      ``delay``: a send whose outcome the client cannot know, settled later by the status webhook.
    """
    platform = _platform(request)
    try:
        payload = await request.json()
        accept = bool(payload.get("accept", False))
        code = int(payload.get("code", 0) if accept else payload["code"])
        count = int(payload.get("count", 1))
        status = int(payload.get("status", 400))
        delay = float(payload.get("delay", 0))
        retry_after = float(payload["retry_after"]) if payload.get("retry_after") is not None else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return JSONResponse({"error": "body must be {\"code\": int, \"status\": int, \"count\": int, "
                                      "\"retry_after\": s, \"delay\": s, \"accept\": bool}"}, status_code=400)
    for _ in range(count):
        platform.fail_next.append({"code": code, "status": status, "message": payload.get("message"),
                                   "details": payload.get("details"), "retry_after": retry_after,
                                   "delay": delay, "accept": accept})
    return JSONResponse({"queued_failures": len(platform.fail_next)})


async def control_keys(request: Request) -> Response:
    """How many times each idempotency key (``biz_opaque_callback_data``) was accepted: the proof that
    a message went out once, or twice (``GET /_sandbox/keys``); with the most sends the sandbox received
    in any one second (its own receive times) and the first and last receive time."""
    platform = _platform(request)
    counts: dict[str, int] = {}
    for record in platform.sent:
        key = record.payload.get("biz_opaque_callback_data")
        if key is not None:
            counts[str(key)] = counts.get(str(key), 0) + 1
    times = sorted(r.received_at for r in platform.sent)
    return JSONResponse({"counts": counts, "sent": len(times), "max_in_one_second": max_in_window(times, 1.0),
                         "first_at": times[0] if times else None, "last_at": times[-1] if times else None})


def max_in_window(times: list[float], seconds: float) -> int:
    """The most of these (sorted) times that fall in any window ``[t, t + seconds)``."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


async def health(request: Request) -> Response:
    platform = _platform(request)
    return JSONResponse({"status": "ok", "phone_number_id": platform.config.phone_number_id,
                         "waba_id": platform.config.waba_id, "customers": platform.config.customers,
                         "speed": platform.config.speed, "enforce_window": platform.config.enforce_window,
                         "enforce_templates": platform.config.enforce_templates,
                         "sent": len(platform.sent), "inbound": len(platform.inbound),
                         "sms": platform.sms is not None})


def create_app(config: SandboxConfig) -> Starlette:
    """The sandbox as an ASGI app; its lifespan starts webhook delivery and the customers."""
    platform = SandboxPlatform(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await platform.start()
        try:
            yield
        finally:
            await platform.stop()

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/_sandbox/inbound", control_inbound, methods=["POST"]),
        Route("/_sandbox/sent", control_sent, methods=["GET"]),
        Route("/_sandbox/state", control_state, methods=["GET"]),
        Route("/_sandbox/fail-next", control_fail_next, methods=["POST"]),
        Route("/_sandbox/keys", control_keys, methods=["GET"]),
        Route("/_sandbox/media/{media_id}", media_bytes_endpoint, methods=["GET"], name="media_bytes"),
        Route("/{version}/{phone_number_id}/messages", messages_endpoint, methods=["POST"]),
        Route("/{version}/{phone_number_id}/media", upload_media_endpoint, methods=["POST"]),
        Route("/{version}/{waba_id}/message_templates", templates_endpoint, methods=["GET"]),
        Route("/{version}/debug_token", debug_token_endpoint, methods=["GET"]),
        Route("/{version}/{media_id}", media_info_endpoint, methods=["GET"]),
    ]
    if platform.sms is not None:
        routes.insert(0, Mount("/twilio", app=platform.sms.api.app))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.platform = platform
    return app


def run_sandbox(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Serve the sandbox with uvicorn until interrupted (``switchboard sandbox``)."""
    import uvicorn

    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", lifespan="on")
