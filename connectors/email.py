"""Email: inbound through a Postmark-style inbound webhook, outbound by SMTP or the Postmark API.

* **Inbound** (JSON: ``FromFull``/``From``, ``To``, ``Subject``, ``TextBody``, ``HtmlBody``,
  ``Headers`` with ``Message-ID``/``In-Reply-To``/``References``, ``Attachments`` in base64). The
  webhook is protected by HTTP basic auth in the URL (``https://user:pass@host/webhooks/email/<key>``,
  credentials ``inbound_username``/``inbound_password``) and/or a token in the URL
  (``…/webhooks/email/<key>?token=<inbound_token>``); :meth:`EmailConnector.verify_signature` checks
  whichever the channel has (at least one is required).
* **What is shown**: HTML bodies become plain text with ``nh3`` (tags dropped, scripts and styles
  removed, entities decoded; never rendered as HTML), then quoted history and signatures are stripped
  with ``mail-parser-reply``. The full text, subject and message ids stay in the message's ``raw``.
* **Threads**: the message id is the ``Message-ID`` header, ``In-Reply-To`` becomes the reply-to id;
  conversations are one per sender address (the contact), so a thread and later mails of the same
  sender share the conversation. Outbound replies carry ``In-Reply-To``/``References``/``Re: subject``
  of the conversation's last inbound mail (a :data:`ThreadLookup` the connector cache provides).
* **Delivery events** (Postmark webhooks on the same URL): ``Bounce`` and ``SpamComplaint`` mark the
  outbound message FAILED with the reason, ``Delivery`` DELIVERED, ``Open`` READ.
* **Outbound** by SMTP (``smtp_host``…; the generated ``Message-ID`` is the provider message id, derived
  from the send's idempotency key so a retry repeats it) or, when ``postmark_server_token`` is set, the
  Postmark API (its ``MessageID`` is the provider message id: bounces name it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import nh3
from mailparser_reply import EmailReplyParser

from connectors.base import (
    AuthenticationError,
    Closing,
    ConnectorError,
    MediaRef,
    PayloadError,
    PermanentError,
    RetryableError,
    SignatureError,
)
from connectors.http import client as http_client
from connectors.http_errors import classify_http_error, transport_error
from connectors.media import DEFAULT_ALLOWED_MIME, MediaSink, StoredMedia, base_mime
from connectors.signatures import header, load_json_object, webhook_url
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

DEFAULT_POSTMARK_API = "https://api.postmarkapp.com"
MAX_ID_CHARS = 256  # messages.provider_message_id
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "pt", "sv"]
_EVENTS: dict[str, DeliveryStatus] = {"Bounce": "FAILED", "SpamComplaint": "FAILED", "Delivery": "DELIVERED",
                                      "Open": "READ"}
_BLOCK_END = re.compile(r"(?i)<br\s*/?>|</(?:p|div|li|tr|h[1-6]|blockquote|table|ul|ol|pre)\s*>")
_MSGID = re.compile(r"<[^<>\s]+>")
_AUTH_POSTMARK = {10}  # bad or missing server token
_INLINE_KINDS = ("image", "video", "audio")


@dataclass(frozen=True, slots=True)
class EmailThread:
    """What a reply to the conversation's last inbound mail needs."""

    message_id: str
    references: tuple[str, ...] = ()
    subject: str | None = None


ThreadLookup = Callable[[str], EmailThread | None]  # customer address -> their last inbound mail, if any


# --- text ------------------------------------------------------------------------------------------

def html_to_text(markup: str) -> str:
    """Safe plain text of an HTML body: line breaks kept, every tag dropped (scripts and styles with
    their content), entities decoded. The result is text, never to be rendered as HTML."""
    marked = _BLOCK_END.sub("\n", markup)
    text = html.unescape(nh3.clean(marked, tags=set()))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def latest_reply(text: str) -> str:
    """The new part of a mail: quoted history (``> …``, ``On … wrote:``) and the signature removed
    (``mail-parser-reply``); the whole text when nothing is left."""
    try:
        replies = EmailReplyParser(languages=REPLY_LANGUAGES).read(text=text).replies
    except Exception:  # a parser failure must never lose the mail: show it whole
        return text.strip()
    shown = (replies[0].body if replies else "").strip()
    return shown or text.strip()


def message_ids(value: str | None) -> tuple[str, ...]:
    """The ``<id@host>`` tokens of a Message-ID / In-Reply-To / References header, in order."""
    return tuple(_bounded(m) for m in _MSGID.findall(value or ""))


def _bounded(message_id: str) -> str:
    """A message id that fits the provider message id column (very long ones are hashed)."""
    if len(message_id) <= MAX_ID_CHARS:
        return message_id
    return f"<sha256.{hashlib.sha256(message_id.encode()).hexdigest()}@long-message-id>"


def reply_subject(subject: str | None) -> str | None:
    if not subject:
        return None
    return subject if re.match(r"(?i)^\s*re\s*:", subject) else f"Re: {subject}"


# --- parsing ---------------------------------------------------------------------------------------

def _headers(data: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in data.get("Headers") or []:
        if isinstance(h, dict) and h.get("Name"):
            out.setdefault(str(h["Name"]).lower(), str(h.get("Value") or ""))
    return out


def _when(value: Any, clock: Clock) -> datetime:
    if isinstance(value, str) and value:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return clock()
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return clock()


def _sender(data: Mapping[str, Any]) -> ContactRef:
    full = data.get("FromFull") if isinstance(data.get("FromFull"), dict) else {}
    name, address = (full or {}).get("Name"), (full or {}).get("Email")
    if not address:
        name, address = parseaddr(str(data.get("From") or ""))
    if not address or "@" not in str(address):
        raise PayloadError("inbound mail without a sender address (From)", code="bad_shape")
    return ContactRef(provider_contact_id=str(address).strip().lower(), display_name=str(name).strip() or None)


def _attachments(data: Mapping[str, Any]) -> tuple[AttachmentRef, ...]:
    out = []
    raw = data.get("Attachments") or []
    if not isinstance(raw, list):
        raise PayloadError("Attachments must be a list", code="bad_shape")
    for i, att in enumerate(raw):
        if not isinstance(att, dict) or not att.get("Content"):
            continue
        mime = str(att.get("ContentType") or "application/octet-stream")
        kind = base_mime(mime).split("/", 1)[0]
        size = att.get("ContentLength")
        out.append(AttachmentRef(
            kind=kind if kind in _INLINE_KINDS else "document", mime_type=base_mime(mime),
            provider_media_id=f"inline:{i}", file_name=str(att.get("Name") or "") or None,
            size_bytes=int(size) if isinstance(size, int) else None,
            data={"content_base64": str(att["Content"])}))
    return tuple(out)


def _event(data: Mapping[str, Any], record: str, clock: Clock) -> ParsedItem:
    pmid = data.get("MessageID")
    if not pmid:
        raise PayloadError(f"{record} event without MessageID", code="bad_shape")
    status = _EVENTS[record]
    when = _when(data.get("BouncedAt") or data.get("DeliveredAt") or data.get("ReceivedAt"), clock)
    raw = {k: v for k, v in data.items() if k not in ("Content", "Attachments")}
    if status != "FAILED":
        return StatusUpdate(provider_message_id=str(pmid), status=status, occurred_at=when,
                            recipient_id=data.get("Recipient") or data.get("Email"), raw=raw)
    kind = str(data.get("Type") or record)
    reason = "; ".join(str(data[k]) for k in ("Name", "Description", "Details") if data.get(k)) or kind
    return StatusUpdate(provider_message_id=str(pmid), status="FAILED", occurred_at=when,
                        recipient_id=data.get("Email"), error_code=kind[:64],
                        error_message=f"{'spam complaint' if record == 'SpamComplaint' else 'bounce'}: {reason}",
                        raw=raw)


def parse_email_webhook(raw_body: bytes, *, clock: Clock = utcnow, own_address: str | None = None
                        ) -> list[ParsedItem]:
    """One Postmark-style webhook: an inbound mail, or a delivery event for one we sent. A mail from the
    channel's own address (``own_address``: a copy of our own reply) is ignored."""
    data = load_json_object(raw_body)
    record = str(data.get("RecordType") or "")
    if record in _EVENTS:
        return [_event(data, record, clock)]
    if record and record != "Inbound":
        return [Ignored(reason=f"email {record} event: nothing to ingest", kind=record.lower(),
                        raw={"RecordType": record, "MessageID": data.get("MessageID")})]
    contact = _sender(data)
    if own_address and contact.provider_contact_id == own_address.lower():
        return [Ignored(reason="a mail from the channel's own address", kind="own_mail",
                        raw={"MessageID": data.get("MessageID"), "Subject": data.get("Subject")})]
    heads = _headers(data)
    own_id = message_ids(heads.get("message-id"))
    pmid = own_id[0] if own_id else (f"postmark:{data['MessageID']}" if data.get("MessageID") else None)
    if pmid is None:
        raise PayloadError("inbound mail without a Message-ID", code="bad_shape")
    in_reply_to = message_ids(heads.get("in-reply-to"))
    references = message_ids(heads.get("references"))
    text = str(data.get("TextBody") or "")
    if not text.strip() and data.get("HtmlBody"):
        text = html_to_text(str(data["HtmlBody"]))
    attachments = _attachments(data)
    shown = latest_reply(text) if text.strip() else None
    raw = {"subject": data.get("Subject"), "from": data.get("From"), "to": data.get("To"),
           "cc": data.get("Cc"), "message_id": pmid, "in_reply_to": list(in_reply_to),
           "references": list(references), "text": text, "has_html": bool(data.get("HtmlBody")),
           "postmark_message_id": data.get("MessageID")}
    return [InboundMessage(provider_message_id=pmid, contact=contact, sent_at=_when(data.get("Date"), clock),
                           body=shown, content_type="text" if shown or not attachments else attachments[0].kind,
                           attachments=attachments,
                           reply_to_provider_message_id=in_reply_to[-1] if in_reply_to else None, raw=raw,
                           thread_ids=tuple(dict.fromkeys((*reversed(in_reply_to), *reversed(references)))))]


# --- webhook security ------------------------------------------------------------------------------

def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def verify_inbound_auth(headers: Mapping[str, str], *, username: str | None, password: str | None,
                        token: str | None) -> None:
    """Basic auth (``Authorization: Basic``) and/or ``?token=`` in the URL, whichever is configured."""
    if not password and not token:
        raise SignatureError("email channel has neither inbound_password nor inbound_token; cannot verify "
                             "inbound webhooks", code="no_secret")
    if password:
        auth = header(headers, "Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic" or not value:
            raise SignatureError("missing basic auth credentials", code="missing_signature")
        try:
            user, _, given = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise SignatureError("malformed basic auth header", code="malformed_signature") from None
        if not (_same(user, username or "") and _same(given, password)):
            raise SignatureError("basic auth credentials do not match", code="bad_signature")
    if token:
        query = parse_qs(urlsplit(webhook_url(headers)).query)
        if not _same(next(iter(query.get("token") or ()), None), token):
            raise SignatureError("the webhook URL's token does not match", code="bad_signature")


# --- sending ---------------------------------------------------------------------------------------

def _smtp_error(exc: Exception) -> ConnectorError:
    if isinstance(exc, smtplib.SMTPNotSupportedError):  # e.g. no STARTTLS: the channel's settings are wrong
        return PermanentError(f"SMTP server refused: {exc}; check smtp_security", code="config")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return AuthenticationError(f"SMTP login refused: {exc.smtp_error!r}", code=f"smtp_{exc.smtp_code}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{rcpt}: {code} {msg!r}" for rcpt, (code, msg) in exc.recipients.items())
        codes = [code for code, _ in exc.recipients.values()]
        cls = RetryableError if codes and all(400 <= c < 500 for c in codes) else PermanentError
        return cls(f"recipient refused: {refused}", code="recipient_refused")
    if isinstance(exc, smtplib.SMTPResponseException):
        cls = RetryableError if 400 <= exc.smtp_code < 500 else PermanentError
        return cls(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", code=f"smtp_{exc.smtp_code}")
    if isinstance(exc, socket.timeout | TimeoutError):
        return RetryableError(f"SMTP server did not answer in time: {exc!r}", code="timeout")
    return RetryableError(f"SMTP connection failed: {exc!r}", code="network")


class EmailConnector(Closing):
    """One mailbox: ``from_address``; SMTP or Postmark out, a Postmark-style inbound webhook in.

    Capabilities: webhooks, send, media (attachments arrive inside the webhook and are stored by the
    media flow like other platforms' downloads).
    """

    provider: Provider = "email"

    def __init__(self, *, from_address: str, from_name: str | None = None, smtp_host: str | None = None,
                 smtp_port: int = 587, smtp_username: str | None = None, smtp_password: str | None = None,
                 smtp_security: str = "starttls", postmark_server_token: str | None = None,
                 postmark_api_url: str = DEFAULT_POSTMARK_API, postmark_message_stream: str = "outbound",
                 inbound_username: str | None = None, inbound_password: str | None = None,
                 inbound_token: str | None = None, default_subject: str | None = None,
                 threads: ThreadLookup | None = None, http: httpx.Client | None = None,
                 timeout: float = 20.0, clock: Clock = utcnow) -> None:
        if "@" not in (from_address or ""):
            raise PermanentError("an email channel needs from_address", code="config")
        if not postmark_server_token and not smtp_host:
            raise PermanentError("an email channel needs smtp_host or postmark_server_token", code="config")
        if smtp_security not in ("starttls", "ssl", "none"):
            raise PermanentError("smtp_security must be starttls, ssl or none", code="config")
        self.from_address = from_address
        self.from_name = from_name
        self.smtp = (smtp_host, smtp_port, smtp_username, smtp_password, smtp_security)
        self._postmark = postmark_server_token
        self.postmark_api_url = postmark_api_url.rstrip("/")
        self.postmark_message_stream = postmark_message_stream
        self._inbound = (inbound_username, inbound_password, inbound_token)
        self.default_subject = default_subject or f"Message from {from_name or from_address}"
        self.threads = threads
        self.timeout = timeout
        self._own_http = http is None
        self._http = http
        self._clock = clock

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = http_client(timeout=httpx.Timeout(self.timeout, connect=5.0))
        return self._http

    def close(self) -> None:
        if self._own_http and self._http is not None:
            self._http.close()

    # --- webhooks
    def verify_signature(self, raw_body: bytes, headers: Mapping[str, str]) -> None:
        username, password, token = self._inbound
        verify_inbound_auth(headers, username=username, password=password, token=token)

    def verify_challenge(self, params: Mapping[str, str]) -> str:
        raise SignatureError("email webhooks have no subscription check", code="no_challenge")

    def parse_webhook(self, raw_body: bytes) -> Sequence[ParsedItem]:
        return parse_email_webhook(raw_body, clock=self._clock, own_address=self.from_address)

    # --- sending
    def message_id(self, request: OutboundRequest) -> str:
        """``<…@domain of from_address>``, the same for every attempt of one send (its idempotency key)."""
        domain = self.from_address.rsplit("@", 1)[1]
        seed = request.idempotency_key or f"{request.recipient_id}:{self._clock().isoformat()}"
        return f"<{hashlib.sha256(seed.encode()).hexdigest()[:32]}@{domain}>"

    def build_message(self, request: OutboundRequest) -> EmailMessage:
        """The MIME message of one send: threading headers from the conversation's last inbound mail."""
        name, to = parseaddr(request.recipient_id)
        if "@" not in to:
            raise PermanentError(f"{request.recipient_id!r} is not an email address", code="invalid_address")
        if request.template is not None:
            raise PermanentError("email channels send text, not WhatsApp templates", code="invalid_request")
        if not request.body and not request.attachments:
            raise PermanentError("nothing to send: no body or attachment", code="invalid_request")
        thread = self.threads(to.lower()) if self.threads is not None else None
        msg = EmailMessage()
        msg["From"] = formataddr((self.from_name or "", self.from_address))
        msg["To"] = formataddr((name, to))
        msg["Subject"] = (reply_subject(thread.subject) if thread else None) or self.default_subject
        msg["Date"] = format_datetime(self._clock())
        msg["Message-ID"] = self.message_id(request)
        parent = request.reply_to_provider_message_id or (thread.message_id if thread else None)
        if parent and _MSGID.fullmatch(parent):
            refs = [*(thread.references if thread else ()), *((thread.message_id,) if thread else ())]
            if parent not in refs:
                refs.append(parent)
            msg["In-Reply-To"] = parent
            msg["References"] = " ".join(dict.fromkeys(refs))
        msg.set_content(request.body or "")
        for att in request.attachments:
            path = att.data.get("path")
            if not path or not Path(str(path)).is_file():
                raise PermanentError("an email attachment needs a stored file (data['path'])",
                                     code="invalid_request")
            maintype, _, subtype = (att.mime_type or "application/octet-stream").partition("/")
            msg.add_attachment(Path(str(path)).read_bytes(), maintype=maintype, subtype=subtype or "octet-stream",
                               filename=att.file_name or Path(str(path)).name)
        return msg

    def send(self, request: OutboundRequest) -> SendResult:
        msg = self.build_message(request)
        if self._postmark:
            return self._send_postmark(msg)
        host, port, username, password, security = self.smtp
        try:
            smtp_cls = smtplib.SMTP_SSL if security == "ssl" else smtplib.SMTP
            with smtp_cls(str(host), int(port), timeout=self.timeout) as smtp:
                if security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if username:
                    smtp.login(username, password or "")
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise _smtp_error(exc) from None
        return SendResult(provider_message_id=str(msg["Message-ID"]), sent_at=self._clock(),
                          raw={"message_id": str(msg["Message-ID"]), "subject": str(msg["Subject"]),
                               "in_reply_to": msg.get("In-Reply-To")})

    def _send_postmark(self, msg: EmailMessage) -> SendResult:
        body = msg.get_body(("plain",))
        payload: dict[str, Any] = {
            "From": str(msg["From"]), "To": str(msg["To"]), "Subject": str(msg["Subject"]),
            "TextBody": body.get_content() if body is not None else "",
            "MessageStream": self.postmark_message_stream,
            "Headers": [{"Name": n, "Value": str(msg[n])} for n in ("Message-ID", "In-Reply-To", "References")
                        if msg[n]],
            "Attachments": [{"Name": part.get_filename() or "attachment",
                             "Content": base64.b64encode(part.get_content() if isinstance(part.get_content(), bytes)
                                                         else str(part.get_content()).encode()).decode(),
                             "ContentType": part.get_content_type()} for part in msg.iter_attachments()],
        }
        try:
            response = self.http.post(f"{self.postmark_api_url}/email", json=payload,
                                      headers={"X-Postmark-Server-Token": str(self._postmark),
                                               "Accept": "application/json"})
        except httpx.TransportError as exc:  # a lost answer: the mail may have gone (unknown outcome)
            raise transport_error(exc, "Postmark's email API", once=True) from None
        if response.status_code >= 400:
            raise classify_http_error(response, code_field="ErrorCode", message_field="Message",
                                      auth_codes=_AUTH_POSTMARK)  # 422: 300 invalid request, 406 inactive
        answer = response.json()
        if not isinstance(answer, dict) or not answer.get("MessageID"):
            raise PermanentError(f"Postmark answered without a MessageID: {response.text!r}"[:500],
                                 code="bad_response")
        return SendResult(provider_message_id=str(answer["MessageID"]), sent_at=self._clock(),
                          raw={**answer, "message_id": str(msg["Message-ID"])})

    # --- media
    def fetch_media(self, media: MediaRef, dest_dir: Path, *, max_bytes: int) -> StoredMedia:
        """Store an attachment that came inside the inbound webhook (base64 in ``MediaRef.inline``)."""
        if media.inline is None:
            raise PermanentError("the attachment's content is not available", code="no_media_content")
        try:
            content = base64.b64decode(media.inline, validate=False)
        except (binascii.Error, ValueError):
            raise PermanentError("the attachment's content is not valid base64", code="bad_media") from None
        mime = base_mime(media.mime_type)
        if mime not in DEFAULT_ALLOWED_MIME:
            raise PermanentError(f"media type {mime!r} is not allowed", code="media_type_not_allowed")
        with MediaSink(dest_dir, max_bytes=max_bytes) as sink:
            sink.write(content)
            return sink.finish(mime)

