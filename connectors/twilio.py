"""Twilio Programmable Messaging (SMS/MMS): verify and parse webhooks, send, download MMS media.

* **Webhooks** are form-encoded (``application/x-www-form-urlencoded``) and signed with
  ``X-Twilio-Signature``: HMAC over the full URL Twilio called plus the sorted form parameters, checked
  with the ``twilio`` package's :class:`~twilio.request_validator.RequestValidator`. The URL is the
  public one (``PUBLIC_BASE_URL`` + path), which the receiver passes in the
  :data:`~connectors.base.WEBHOOK_URL_HEADER` pseudo-header, so a proxy in front of the receiver does
  not break the check.
* One webhook URL per channel receives both **inbound messages** (``SmsStatus=received``: ``From``,
  ``Body``, ``NumMedia``, ``MediaUrl0``, ``MediaContentType0``…) and **status callbacks**
  (``MessageStatus`` ``queued`` → ``sent`` → ``delivered`` / ``undelivered`` / ``failed`` with
  ``ErrorCode``), which become :class:`~switchboard.types.StatusUpdate` items (applied forward-only by
  ingest). ``accepted``/``scheduled``/``queued``/``sending`` are :class:`Ignored` (the message is SENT
  for us once the Messages API accepted it).
* Twilio webhooks carry no timestamp: messages and statuses are dated when they are parsed.
* **Sending**: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (basic auth, form-encoded,
  ``StatusCallback`` = the channel's webhook URL); numbers in E.164 (:func:`e164`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import phonenumbers
from twilio.request_validator import RequestValidator, get_signature_algorithm

from connectors.base import (
    Closing,
    ConnectorError,
    MediaRef,
    PayloadError,
    PermanentError,
    SignatureError,
)
from connectors.http import client as http_client
from connectors.http_errors import classify_http_error, transport_error
from connectors.media import DEFAULT_ALLOWED_MIME, StoredMedia, download_to_dir
from connectors.signatures import header, load_form, webhook_url
from switchboard.clock import Clock, utcnow
from switchboard.types import (
    AttachmentRef,
    ContactRef,
    DeliveryStatus,
    Ignored,
    InboundMessage,
    OutboundRequest,
    ParsedItem,
    Provider,
    SendResult,
    StatusUpdate,
)

DEFAULT_TWILIO_API = "https://api.twilio.com"
API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600  # Twilio refuses longer bodies (error 21617)
MAX_MEDIA = 10
_STATUS: dict[str, DeliveryStatus] = {"sent": "SENT", "delivered": "DELIVERED", "read": "READ",
                                      "undelivered": "FAILED", "failed": "FAILED", "canceled": "FAILED"}
_ON_ITS_WAY = ("accepted", "scheduled", "queued", "sending")
_INBOUND = ("received", "receiving")
_AUTH_CODES = {20003, 20005}  # authentication failed, account suspended
_RATE_CODES = {20429, 14107}  # too many requests, SMS rate limit exceeded
_MEDIA_KINDS = ("image", "video", "audio")


def e164(number: str, default_region: str | None = None) -> str:
    """A phone number in E.164 (``+14155550100``); ``whatsapp:`` addresses keep their prefix.

    Raises PermanentError ``invalid_number`` (the customer's number cannot be used) otherwise."""
    value = (number or "").strip()
    prefix = ""
    if value.lower().startswith("whatsapp:"):
        prefix, value = "whatsapp:", value[len("whatsapp:"):]
    try:
        parsed = phonenumbers.parse(value, None if value.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise PermanentError(f"{number!r} is not a phone number: {exc}", code="invalid_number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise PermanentError(f"{number!r} is not a valid phone number", code="invalid_number")
    return prefix + phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _sender(value: str) -> ContactRef:
    """The customer: E.164 when the sender is a phone number, else as given (short codes, names)."""
    try:
        number = e164(value)
    except PermanentError:
        return ContactRef(provider_contact_id=value)
    return ContactRef(provider_contact_id=number, phone=number.removeprefix("whatsapp:"))


class _Params(dict[str, list[str]]):
    """Form parameters with every value of a repeated name (the validator asks ``getlist``)."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


def verify_twilio_signature(raw_body: bytes, headers: Mapping[str, str], auth_token: str) -> None:
    """Check ``X-Twilio-Signature`` over the public URL (from the receiver) and the form parameters."""
    if not auth_token:
        raise SignatureError("channel has no auth_token configured; cannot verify webhook signatures",
                             code="no_secret")
    signature = header(headers, "X-Twilio-Signature")
    if not signature:
        raise SignatureError("missing X-Twilio-Signature header", code="missing_signature")
    url = webhook_url(headers)
    try:
        params = _Params(load_form(raw_body)) if raw_body else _Params()
    except PayloadError as exc:
        raise SignatureError(f"cannot verify: {exc.message}", code="bad_signature") from None
    algorithm = get_signature_algorithm(header(headers, "X-Twilio-Webhooks-Signature-Settings"))
    if not RequestValidator(auth_token).validate(url, params, signature, algorithm):
        raise SignatureError("X-Twilio-Signature does not match the URL and parameters", code="bad_signature")


def _attachments(p: Mapping[str, str], message_sid: str) -> tuple[AttachmentRef, ...]:
    try:
        count = int(p.get("NumMedia") or 0)
    except ValueError:
        raise PayloadError(f"NumMedia {p.get('NumMedia')!r} is not a number", code="bad_shape") from None
    out = []
    for i in range(min(count, MAX_MEDIA)):
        url = p.get(f"MediaUrl{i}")
        if not url:
            continue
        mime = p.get(f"MediaContentType{i}") or None
        kind = (mime or "").split("/", 1)[0]
        # .../Messages/{MessageSid}/Media/{MediaSid}: downloaded through the API with our credentials
        parts = urlsplit(url).path.rstrip("/").split("/")
        media_sid = parts[-1] if len(parts) >= 4 and parts[-2] == "Media" and parts[-3] == message_sid else None
        out.append(AttachmentRef(kind=kind if kind in _MEDIA_KINDS else "document", mime_type=mime,
                                 provider_media_id=media_sid, url=url))
    return tuple(out)


def parse_twilio_webhook(raw_body: bytes, *, clock: Clock = utcnow) -> list[ParsedItem]:
    """One form-encoded Twilio messaging webhook (an inbound SMS/MMS or a status callback) as items."""
    form = load_form(raw_body)
    p = {k: v[0] for k, v in form.items() if v}
    sid = p.get("MessageSid") or p.get("SmsSid")
    if not sid:
        raise PayloadError("not a Twilio messaging webhook: MessageSid is missing", code="bad_shape")
    now = clock()
    status = (p.get("MessageStatus") or p.get("SmsStatus") or "").lower()
    if status and status not in _INBOUND:
        mapped = _STATUS.get(status)
        if mapped is None:
            why = "still on its way" if status in _ON_ITS_WAY else "unknown status"
            return [Ignored(reason=f"Twilio status {status}: {why}", kind=f"status_{status}", raw=p)]
        code = p.get("ErrorCode") or None
        return [StatusUpdate(provider_message_id=sid, status=mapped, occurred_at=now, recipient_id=p.get("To"),
                             error_code=code, error_message=(p.get("ErrorMessage") or
                                                             (f"Twilio error {code}" if code else None)),
                             raw=p)]
    sender = p.get("From")
    if not sender:
        raise PayloadError("inbound Twilio message without From", code="bad_shape")
    contact = _sender(sender)
    extra = {k: p[k] for k in ("FromCity", "FromState", "FromCountry") if p.get(k)}
    if extra:
        contact = ContactRef(contact.provider_contact_id, phone=contact.phone, metadata=extra)
    attachments = _attachments(p, sid)
    body = p.get("Body") or None
    return [InboundMessage(provider_message_id=sid, contact=contact, sent_at=now, body=body,
                           content_type="text" if body or not attachments else attachments[0].kind,
                           attachments=attachments, raw=p)]


def classify_twilio_error(response: httpx.Response) -> ConnectorError:
    """A non-2xx Twilio REST answer as a connector error, keeping Twilio's code: 21211 invalid 'To',
    21610 unsubscribed, 21614 not a mobile number... are permanent."""
    return classify_http_error(response, code_field="code", message_field="message", rate_codes=_RATE_CODES,
                               auth_codes=_AUTH_CODES)


class TwilioConnector(Closing):
    """One Twilio sender: a phone number (``from_number``) or a Messaging Service.

    Capabilities: webhooks (inbound SMS/MMS and status callbacks), send, media (MMS downloads).
    """

    provider: Provider = "twilio"

    def __init__(self, *, account_sid: str, auth_token: str, from_number: str | None = None,
                 messaging_service_sid: str | None = None, api_key_sid: str | None = None,
                 api_key_secret: str | None = None, status_callback_url: str | None = None,
                 default_region: str | None = None, api_base_url: str = DEFAULT_TWILIO_API,
                 http: httpx.Client | None = None, clock: Clock = utcnow) -> None:
        if not account_sid or not auth_token:
            raise PermanentError("a Twilio channel needs account_sid and auth_token", code="config")
        if not from_number and not messaging_service_sid:
            raise PermanentError("a Twilio channel needs from_number or messaging_service_sid", code="config")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.from_number = e164(from_number, default_region) if from_number else None
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_url = status_callback_url
        self.default_region = default_region
        self.api_base_url = api_base_url.rstrip("/")
        user, secret = (api_key_sid, api_key_secret) if api_key_sid and api_key_secret else (account_sid, auth_token)
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        self._auth = {"Authorization": f"Basic {token}"}
        self._own_http = http is None
        self.http = http or http_client(timeout=httpx.Timeout(20.0, connect=5.0), follow_redirects=True)
        self._clock = clock

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def _url(self, path: str) -> str:
        return f"{self.api_base_url}/{API_VERSION}/Accounts/{self.account_sid}/{path}"

    # --- webhooks
    def verify_signature(self, raw_body: bytes, headers: Mapping[str, str]) -> None:
        verify_twilio_signature(raw_body, headers, self._auth_token)

    def verify_challenge(self, params: Mapping[str, str]) -> str:
        raise SignatureError("Twilio has no subscription check: configure the webhook URL on the number",
                             code="no_challenge")

    def parse_webhook(self, raw_body: bytes) -> Sequence[ParsedItem]:
        return parse_twilio_webhook(raw_body, clock=self._clock)

    # --- sending
    def build_form(self, request: OutboundRequest) -> list[tuple[str, str]]:
        """The form fields of ``POST Messages.json`` for one request (validated)."""
        if request.template is not None:
            raise PermanentError("Twilio SMS channels send text, not WhatsApp templates", code="invalid_request")
        body = request.body or ""
        if len(body) > MAX_BODY_CHARS:
            raise PermanentError(f"text is {len(body)} characters; Twilio allows {MAX_BODY_CHARS}",
                                 code="text_too_long")
        form = [("To", e164(request.recipient_id, self.default_region))]
        form.append(("MessagingServiceSid", self.messaging_service_sid) if self.messaging_service_sid
                    else ("From", str(self.from_number)))
        if body:
            form.append(("Body", body))
        for att in request.attachments:
            if not att.url or not att.url.startswith(("https://", "http://")):
                raise PermanentError("Twilio MMS needs each attachment as a public URL", code="invalid_request")
            form.append(("MediaUrl", att.url))
        if not body and not request.attachments:
            raise PermanentError("nothing to send: no body or attachment", code="invalid_request")
        if self.status_callback_url:
            form.append(("StatusCallback", self.status_callback_url))
        return form

    def send(self, request: OutboundRequest) -> SendResult:
        form = self.build_form(request)
        try:
            response = self.http.post(self._url("Messages.json"), data=_group(form), headers=self._auth)
        except httpx.TransportError as exc:  # Twilio does not deduplicate: a lost answer is an unknown outcome
            raise transport_error(exc, "Twilio's Messages API", once=True) from None
        if response.status_code >= 400:
            raise classify_twilio_error(response)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not answer.get("sid"):
            raise PermanentError(f"Twilio answered without a message sid: {response.text!r}"[:500],
                                 code="bad_response")
        return SendResult(provider_message_id=str(answer["sid"]), sent_at=self._clock(), raw=answer)

    # --- media
    def fetch_media(self, media: MediaRef, dest_dir: Path, *, max_bytes: int) -> StoredMedia:
        """An MMS file through the REST API (``.../Messages/{MessageSid}/Media/{MediaSid}``, with our
        credentials; Twilio redirects to its storage, followed without the credentials)."""
        if not media.provider_media_id or not media.provider_message_id:
            raise PermanentError("the attachment has no Twilio media sid", code="no_media_id")
        url = self._url(f"Messages/{media.provider_message_id}/Media/{media.provider_media_id}")
        return download_to_dir(self.http, url, dest_dir, headers=self._auth, max_bytes=max_bytes,
                               allowed_mime=DEFAULT_ALLOWED_MIME)


def _group(form: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Form pairs for httpx: a name given several times (``MediaUrl``) as a list."""
    out: dict[str, str | list[str]] = {}
    for name, value in form:
        if name in out:
            prev = out[name]
            out[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[name] = value
    return out
