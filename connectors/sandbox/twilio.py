"""A local Twilio: the Messages API, MMS media, and the webhooks Twilio posts (signed).

``SandboxTwilio(account_sid, auth_token).app`` is an ASGI app: the sandbox mounts it under ``/twilio``
(:mod:`connectors.sandbox.app`, with simulated SMS customers and status callbacks) and the tests serve it
alone (``tests.fakes.twilio``):

* ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (basic auth, form-encoded) accepts a send
  (``201`` with a ``SM…`` sid, status ``queued``), refuses a bad number (``400``, code ``21211``), bad
  credentials (``401``, code ``20003``) and answers what ``forced`` holds first (429, 500…);
* ``GET …/Messages/{MessageSid}/Media/{MediaSid}`` (basic auth) redirects to the file, like Twilio;
* ``GET /_sandbox/sent`` lists what was sent (``?to=`` filters), with the statuses called back so far.

``on_send`` (when set) is called with each accepted send's record, in the serving event loop: the
sandbox uses it to post the ``sent`` and ``delivered`` status callbacks and hand the text to a customer.

As Twilio, it signs what it posts to a webhook URL with ``X-Twilio-Signature`` (over the *public* URL it
was given, which a proxy may map to another local address): :meth:`inbound` (an SMS/MMS from a customer),
:meth:`status` (a status callback of a message it accepted).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import phonenumbers
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

if TYPE_CHECKING:
    import asyncio
    import random

    from connectors.sandbox.app import SandboxPlatform
    from connectors.sandbox.customers import CustomerSimulation


@dataclass
class Forced:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def sign(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)

    class _P(dict[str, list[str]]):
        def getlist(self, name: str) -> list[str]:
            return self[name]

    return str(RequestValidator(auth_token).compute_signature(url, _P(grouped)))


class SandboxTwilio:
    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "twilio-auth-token") -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.base_url = ""  # set once served: media URLs point here
        self.sent: list[dict[str, Any]] = []
        self.forced: list[Forced] = []
        self.media: dict[str, tuple[bytes, str]] = {}  # media sid -> (bytes, content type)
        self.media_requests: list[dict[str, str]] = []
        self.on_send: Callable[[dict[str, Any]], None] | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        prefix = f"/2010-04-01/Accounts/{account_sid}"
        self.app = Starlette(routes=[
            Route(f"{prefix}/Messages.json", self._send, methods=["POST"]),
            Route(f"{prefix}/Messages/{{message}}/Media/{{media}}", self._media, methods=["GET"]),
            Route("/files/{media}", self._file, methods=["GET"]),
            Route("/_sandbox/sent", self._control_sent, methods=["GET"]),
        ])

    def _sid(self, prefix: str) -> str:
        with self._lock:
            n = next(self._ids)
        return prefix + hashlib.sha256(f"{prefix}{n}".encode()).hexdigest()[:32]

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    @staticmethod
    def _error(status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": message, "status": status,
                             "more_info": f"https://www.twilio.com/docs/errors/{code}"}, status_code=status)

    async def _send(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        with self._lock:
            forced = self.forced.pop(0) if self.forced else None
        if forced is not None:
            return JSONResponse(forced.body, status_code=forced.status, headers=forced.headers)
        form = await request.form()
        to = str(form.get("To") or "")
        try:
            valid = phonenumbers.is_valid_number(phonenumbers.parse(to, None))
        except phonenumbers.NumberParseException:
            valid = False
        if not valid:
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        sid = self._sid("SM")
        media_urls = [str(v) for v in form.getlist("MediaUrl")]
        record = {"sid": sid, "To": to, "From": form.get("From"), "Body": form.get("Body"),
                  "MessagingServiceSid": form.get("MessagingServiceSid"), "MediaUrl": media_urls,
                  "StatusCallback": form.get("StatusCallback"), "statuses": ["queued"]}
        with self._lock:
            self.sent.append(record)
        if self.on_send is not None:
            self.on_send(record)
        return JSONResponse({"sid": sid, "account_sid": self.account_sid, "to": to, "from": record["From"],
                             "body": record["Body"], "status": "queued", "num_media": str(len(media_urls))},
                            status_code=201)

    async def _control_sent(self, request: Request) -> Response:
        to = request.query_params.get("to")
        with self._lock:
            records = [dict(r) for r in self.sent if to is None or r["To"] == to]
        return JSONResponse({"messages": records})

    async def _media(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        media = request.path_params["media"]
        if media not in self.media:
            return self._error(404, 20404, "The requested resource was not found")
        storage = self.base_url.replace("127.0.0.1", "localhost")  # another host, as Twilio's storage is
        return RedirectResponse(f"{storage}/files/{media}", status_code=307)

    async def _file(self, request: Request) -> Response:
        self.media_requests.append(dict(request.headers))
        content, mime = self.media[request.path_params["media"]]
        return Response(content, media_type=mime)

    # --- what Twilio posts to our webhooks
    def signed(self, url: str, params: list[tuple[str, str]], signature: str | None = None
               ) -> tuple[bytes, dict[str, str]]:
        """The form body and headers Twilio posts to ``url`` (signed over it unless ``signature`` is given)."""
        sig = signature if signature is not None else sign(self.auth_token, url, params)
        return urlencode(params).encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                            "X-Twilio-Signature": sig}

    def post(self, target_url: str, params: list[tuple[str, str]], *, public_url: str | None = None,
             signature: str | None = None) -> httpx.Response:
        """POST a signed form to ``target_url`` (signed over ``public_url``, the URL Twilio was given)."""
        raw, headers = self.signed(public_url or target_url, params, signature)
        return httpx.post(target_url, content=raw, headers=headers, timeout=10)

    def inbound_params(self, *, from_: str, to: str, body: str = "",
                       media: Sequence[tuple[bytes, str]] = ()) -> list[tuple[str, str]]:
        sid = self._sid("MM" if media else "SM")
        params = [("ToCountry", "US"), ("SmsMessageSid", sid), ("NumMedia", str(len(media))),
                  ("SmsSid", sid), ("SmsStatus", "received"), ("Body", body), ("To", to), ("NumSegments", "1"),
                  ("MessageSid", sid), ("AccountSid", self.account_sid), ("From", from_), ("ApiVersion", "2010-04-01"),
                  ("FromCity", "SAN FRANCISCO"), ("FromCountry", "US")]
        for i, (content, mime) in enumerate(media):
            media_sid = self._sid("ME")
            self.media[media_sid] = (content, mime)
            url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media/{media_sid}"
            params += [(f"MediaUrl{i}", url), (f"MediaContentType{i}", mime)]
        return params

    def inbound(self, target_url: str, *, from_: str, to: str, body: str = "",
                media: Sequence[tuple[bytes, str]] = (), public_url: str | None = None
                ) -> tuple[str, httpx.Response]:
        """A customer's SMS (or MMS with ``media``): (its MessageSid, the receiver's answer)."""
        params = self.inbound_params(from_=from_, to=to, body=body, media=media)
        return dict(params)["MessageSid"], self.post(target_url, params, public_url=public_url)

    def status(self, target_url: str, sid: str, status: str, *, error_code: str | None = None,
               public_url: str | None = None) -> httpx.Response:
        """A status callback for the message ``sid``."""
        return self.post(target_url, self.status_params(sid, status, error_code=error_code), public_url=public_url)

    def status_params(self, sid: str, status: str, *, error_code: str | None = None) -> list[tuple[str, str]]:
        sent = next((s for s in self.sent if s["sid"] == sid), {})
        params = [("SmsSid", sid), ("SmsStatus", status), ("MessageStatus", status), ("To", str(sent.get("To") or "")),
                  ("MessageSid", sid), ("AccountSid", self.account_sid), ("From", str(sent.get("From") or "")),
                  ("ApiVersion", "2010-04-01")]
        if error_code:
            params.append(("ErrorCode", error_code))
        return params


class SandboxSms:
    """The sandbox's SMS number (``config.sms_*``): a :class:`SandboxTwilio` whose accepted sends get
    ``sent`` then ``delivered`` status callbacks (signed, to each send's ``StatusCallback``) and reach the
    simulated SMS customers, who write to ``config.sms_webhook_url`` (signed over it). SMS has no read
    receipts. Webhooks go through the platform's delivery queue (retries, counters)."""

    kind = "sms"

    def __init__(self, platform: SandboxPlatform) -> None:
        config = platform.config
        self.platform = platform
        self.webhook_url = config.sms_webhook_url
        self.number = config.sms_from_number
        self.api = SandboxTwilio(config.sms_account_sid, config.sms_auth_token)
        self.api.base_url = f"{config.base_url.rstrip('/')}/twilio" if config.base_url else ""
        self.api.on_send = self._accepted
        self.inbound: list[dict[str, Any]] = []
        self.simulation: CustomerSimulation | None = None

    @staticmethod
    def new_phone(rng: random.Random) -> str:
        return f"1415{rng.randint(2_000_000, 9_999_999)}"  # a valid US number (Twilio checks)

    def customer_writes(self, *, phone: str, name: str | None, text: str | None = None,
                        image: tuple[bytes, str, str | None] | None = None
                        ) -> tuple[str, asyncio.Future[int | None]]:
        """An SMS (an MMS with ``image`` when the sandbox knows its URL) from ``phone``."""
        body = text or ""
        media: tuple[tuple[bytes, str], ...] = ()
        if image is not None:
            data, mime, caption = image
            body = caption or ""
            media = ((data, mime),) if self.api.base_url else ()
        params = self.api.inbound_params(from_="+" + phone.lstrip("+"), to=self.number, body=body, media=media)
        sid = dict(params)["MessageSid"]
        self.inbound.append({"id": sid, "from": phone, "name": name, "text": body, "media": len(media)})
        return sid, self.platform.deliver(self.webhook_url, *self.api.signed(self.webhook_url, params))

    async def customer_reads(self, message_ids: list[str]) -> None:
        """SMS has no read receipts."""

    def _accepted(self, record: dict[str, Any]) -> None:
        self.platform.spawn(self._status_pipeline(record))

    def _status(self, record: dict[str, Any], status: str) -> None:
        record["statuses"].append(status)
        url = record.get("StatusCallback")
        if url:
            self.platform.deliver(str(url), *self.api.signed(str(url), self.api.status_params(record["sid"], status)))

    async def _status_pipeline(self, record: dict[str, Any]) -> None:
        await self.platform.sleep(self.platform.uniform(0.1, 0.6))
        self._status(record, "sent")
        await self.platform.sleep(self.platform.uniform(0.3, 1.5))
        self._status(record, "delivered")
        customer = self.simulation.customer(str(record["To"])) if self.simulation is not None else None
        if customer is not None:
            customer.receive(record["sid"])
