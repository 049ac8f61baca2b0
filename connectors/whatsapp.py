"""WhatsApp Cloud API connector: verify and parse webhooks, send, mark read, download media.

Parsing is a pure function (:func:`parse_whatsapp_webhook`) so it can be tested on every recorded
payload without a network. Every well-formed payload becomes domain items: messages of every type,
statuses, edits, deletions; system, account and preference updates become :class:`Ignored` with a
reason. Only bodies that are not JSON or not shaped like a WhatsApp webhook raise
:class:`PayloadError`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from connectors.base import AuthenticationError, MediaRef, MessageTemplate, PayloadError, PermanentError
from connectors.graph import DEFAULT_GRAPH_BASE_URL, DEFAULT_GRAPH_VERSION, DEFAULT_TIMEOUT, GraphAccount
from connectors.media import DEFAULT_ALLOWED_MIME, DEFAULT_MAX_BYTES, StoredMedia, download_to_dir
from connectors.signatures import load_json_object, verify_meta_signature
from switchboard.clock import Clock, utcnow
from switchboard.types import (
    AttachmentRef,
    ContactRef,
    DeliveryStatus,
    Ignored,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    OutboundRequest,
    ParsedItem,
    SendResult,
    StatusUpdate,
)

WHATSAPP_OBJECT = "whatsapp_business_account"
MAX_TEXT_CHARS = 4096
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
_CAPTION_KINDS = ("image", "video", "document")
_STATUS_MAP: dict[str, DeliveryStatus] = {
    "sent": "SENT",
    "delivered": "DELIVERED",
    "read": "READ",
    "played": "READ",  # a voice note was played: it was read
    "failed": "FAILED",
}


# --- parsing ---------------------------------------------------------------------------------------

def _ts(value: Any, where: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise PayloadError(f"{where}: timestamp {value!r} is not a unix time", code="bad_timestamp") from None


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object, got {type(value).__name__}", code="bad_shape")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{where} must be a list, got {type(value).__name__}", code="bad_shape")
    return value


def _str(value: Any, where: str) -> str:
    if value is None or isinstance(value, dict | list) or value == "":
        raise PayloadError(f"{where} is missing", code="bad_shape")
    return str(value)


def _contact(wa_id: str, profiles: Mapping[str, dict[str, Any]]) -> ContactRef:
    c = profiles.get(wa_id, {})
    profile = c.get("profile") if isinstance(c.get("profile"), dict) else {}
    metadata = {k: c[k] for k in ("user_id", "parent_user_id") if c.get(k)}
    return ContactRef(
        provider_contact_id=wa_id,
        display_name=(profile or {}).get("name"),
        username=(profile or {}).get("username"),
        phone=wa_id if wa_id.isdigit() else None,
        metadata=metadata,
    )


def _media_attachment(kind: str, media: dict[str, Any]) -> AttachmentRef:
    data: dict[str, Any] = {k: media[k] for k in ("caption", "animated", "voice") if k in media}
    return AttachmentRef(
        kind=kind,
        mime_type=media.get("mime_type"),
        provider_media_id=str(media["id"]) if media.get("id") is not None else None,
        url=media.get("url") or media.get("link"),
        file_name=media.get("filename"),
        sha256=media.get("sha256"),
        data=data,
    )


def _content(msg: dict[str, Any], where: str) -> tuple[str, str | None, tuple[AttachmentRef, ...]]:
    """(content_type, body, attachments) of one message object (inbound, echo or edited payload)."""
    mtype = str(msg.get("type") or "unsupported")
    if mtype == "text":
        text = msg.get("text") or {}
        return "text", _obj(text, f"{where}.text").get("body"), ()
    if mtype in MEDIA_KINDS:
        media = msg.get(mtype)
        if not isinstance(media, dict):
            return mtype, None, ()
        return mtype, media.get("caption"), (_media_attachment(mtype, media),)
    if mtype == "location":
        loc = _obj(msg.get("location") or {}, f"{where}.location")
        label = ", ".join(str(loc[k]) for k in ("name", "address") if loc.get(k)) or None
        if label is None and "latitude" in loc and "longitude" in loc:
            label = f"{loc['latitude']}, {loc['longitude']}"
        return "location", label, (AttachmentRef(kind="location", url=loc.get("url"), data=dict(loc)),)
    if mtype == "contacts":
        cards = _list(msg.get("contacts"), f"{where}.contacts")
        names = [str((c.get("name") or {}).get("formatted_name") or "") for c in cards if isinstance(c, dict)]
        body = ", ".join(n for n in names if n) or None
        return "contacts", body, (AttachmentRef(kind="contacts", data={"contacts": cards}),)
    if mtype == "reaction":
        reaction = _obj(msg.get("reaction") or {}, f"{where}.reaction")
        return "reaction", reaction.get("emoji") or None, ()
    if mtype == "interactive":
        inter = msg.get("interactive")
        if not isinstance(inter, dict):
            return "interactive", None, ()
        itype = str(inter.get("type") or "")
        reply: dict[str, Any] = inter[itype] if isinstance(inter.get(itype), dict) else {}
        body = reply.get("title") or reply.get("body") or reply.get("name")
        data = {"interactive_type": itype, **reply}
        return "interactive", body, (AttachmentRef(kind="interactive", data=data),)
    if mtype == "button":
        button = _obj(msg.get("button") or {}, f"{where}.button")
        return "button", button.get("text"), (AttachmentRef(kind="button", data=dict(button)),)
    if mtype == "order":
        order = _obj(msg.get("order") or {}, f"{where}.order")
        items = [i for i in _list(order.get("product_items"), f"{where}.order.product_items")
                 if isinstance(i, dict)]
        summary = ", ".join(f"{i.get('quantity', 1)} x {i.get('product_retailer_id', '?')}" for i in items)
        body = order.get("text") or (f"Order: {summary}" if summary else "Order")
        return "order", body, (AttachmentRef(kind="order", data=order),)
    # unsupported, unknown future types: keep the message, say what it was
    inner: dict[str, Any] = msg[mtype] if isinstance(msg.get(mtype), dict) else {}
    return "unsupported", None, ((AttachmentRef(kind="unsupported", data={"type": mtype, **inner}),)
                                 if mtype != "unsupported" or inner else ())


def _reply_to(msg: dict[str, Any]) -> str | None:
    context = msg.get("context")
    if isinstance(context, dict) and context.get("id"):
        return str(context["id"])
    if msg.get("type") == "reaction" and isinstance(msg.get("reaction"), dict):
        target = msg["reaction"].get("message_id")
        return str(target) if target else None
    return None


def _parse_message(msg: dict[str, Any], profiles: Mapping[str, dict[str, Any]], where: str,
                   *, echo: bool = False) -> ParsedItem:
    mtype = str(msg.get("type") or "unsupported")
    mid = _str(msg.get("id"), f"{where}.id")
    when = _ts(msg.get("timestamp"), where)
    peer = msg.get("to") if echo else msg.get("from")
    peer_id = str(peer) if peer not in (None, "") else None
    if mtype == "system":
        system: dict[str, Any] = msg["system"] if isinstance(msg.get("system"), dict) else {}
        return Ignored(reason=f"system message ({system.get('type', 'unknown')}): {system.get('body', '')}".strip(),
                       kind="system", raw=msg)
    if mtype == "request_welcome":
        return Ignored(reason="customer opened the chat for the first time (request_welcome)",
                       kind="request_welcome", raw=msg)
    if mtype == "revoke":
        revoke = _obj(msg.get("revoke") or {}, f"{where}.revoke")
        original = _str(revoke.get("original_message_id"), f"{where}.revoke.original_message_id")
        return MessageDeletion(provider_message_id=original, deleted_at=when,
                               provider_contact_id=peer_id, raw=msg)
    if mtype == "edit":
        edit = _obj(msg.get("edit") or {}, f"{where}.edit")
        original = _str(edit.get("original_message_id"), f"{where}.edit.original_message_id")
        new_msg: dict[str, Any] = edit["message"] if isinstance(edit.get("message"), dict) else {}
        _, new_body, _ = _content(new_msg, f"{where}.edit.message") if new_msg else ("text", None, ())
        return MessageEdit(provider_message_id=original, new_body=new_body, edited_at=when,
                           provider_contact_id=peer_id, raw=msg)
    if peer_id is None:
        raise PayloadError(f"{where}: message has no {'to' if echo else 'from'}", code="bad_shape")
    content_type, body, attachments = _content(msg, where)
    return InboundMessage(
        provider_message_id=mid,
        contact=_contact(peer_id, profiles),
        sent_at=when,
        body=body,
        content_type=content_type,
        attachments=attachments,
        reply_to_provider_message_id=_reply_to(msg),
        direction="OUTBOUND" if echo else "INBOUND",
        author_kind="agent" if echo else "customer",
        raw=msg,
    )


def _parse_status(st: dict[str, Any], where: str) -> ParsedItem:
    raw_status = str(st.get("status") or "")
    status = _STATUS_MAP.get(raw_status)
    if status is None:
        return Ignored(reason=f"status {raw_status!r} is not tracked", kind="status", raw=st)
    errors = [e for e in _list(st.get("errors"), f"{where}.errors") if isinstance(e, dict)]
    code = message = None
    if errors:
        first = errors[0]
        code = str(first["code"]) if first.get("code") is not None else None
        details = first.get("error_data", {}).get("details") if isinstance(first.get("error_data"), dict) else None
        message = str(first.get("message") or first.get("title") or "")
        if details and details not in message:
            message = f"{message}: {details}" if message else str(details)
    return StatusUpdate(
        provider_message_id=_str(st.get("id"), f"{where}.id"),
        status=status,
        occurred_at=_ts(st.get("timestamp"), where),
        recipient_id=str(st["recipient_id"]) if st.get("recipient_id") is not None else None,
        error_code=code,
        error_message=message or None,
        raw=st,
    )


def _parse_messages_value(value: dict[str, Any], field: str, where: str) -> list[ParsedItem]:
    items: list[ParsedItem] = []
    profiles = {str(c.get("wa_id")): c for c in _list(value.get("contacts"), f"{where}.contacts")
                if isinstance(c, dict)}
    for i, msg in enumerate(_list(value.get("messages"), f"{where}.messages")):
        items.append(_parse_message(_obj(msg, f"{where}.messages[{i}]"), profiles, f"{where}.messages[{i}]"))
    for i, msg in enumerate(_list(value.get("message_echoes"), f"{where}.message_echoes")):
        items.append(_parse_message(_obj(msg, f"{where}.message_echoes[{i}]"), profiles,
                                    f"{where}.message_echoes[{i}]", echo=True))
    for i, st in enumerate(_list(value.get("statuses"), f"{where}.statuses")):
        items.append(_parse_status(_obj(st, f"{where}.statuses[{i}]"), f"{where}.statuses[{i}]"))
    errors = [e for e in _list(value.get("errors"), f"{where}.errors") if isinstance(e, dict)]
    if errors and not items:
        first = errors[0]
        items.append(Ignored(reason=f"platform error {first.get('code')}: {first.get('message') or first.get('title')}",
                             kind="error", raw=value))
    if not items:
        items.append(Ignored(reason=f"{field} change without messages or statuses", kind=field, raw=value))
    return items


def _phone_number_id(value: dict[str, Any]) -> str | None:
    metadata = value.get("metadata")
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    if number is None or isinstance(number, dict | list | bool) or str(number).strip() == "":
        return None
    return str(number).strip()


def channel_phone_number_id(external_id: str | None, credentials: Mapping[str, Any]) -> str | None:
    """The phone number id a WhatsApp/sandbox channel sends from and receives for: the
    ``phone_number_id`` credential, else the channel's external id (what the connector uses)."""
    value = str(credentials.get("phone_number_id") or external_id or "").strip()
    return value or None


def parse_whatsapp_webhook_by_number(raw_body: bytes | Mapping[str, Any]) -> list[tuple[str | None, list[ParsedItem]]]:
    """Parse one webhook POST body into ``(phone_number_id, items)`` per change, in order.

    ``phone_number_id`` is the change's ``value.metadata.phone_number_id``: the business number the
    messages were sent to and the statuses are about. One Meta app has one callback URL for all the
    numbers of its WhatsApp Business Accounts, so a delivery may carry changes of several numbers;
    the caller routes each change to the channel of its number. ``None`` when the change names no
    number (account, template and other WABA-level updates, which are :class:`Ignored` anyway).
    """
    data = load_json_object(raw_body) if isinstance(raw_body, bytes | bytearray) else dict(raw_body)
    obj = data.get("object")
    if obj != WHATSAPP_OBJECT:
        raise PayloadError(f"not a WhatsApp webhook: object is {obj!r}, expected {WHATSAPP_OBJECT!r}",
                           code="wrong_object")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("webhook has no 'entry' list", code="bad_shape")
    out: list[tuple[str | None, list[ParsedItem]]] = []
    for e_i, entry in enumerate(entries):
        entry = _obj(entry, f"entry[{e_i}]")
        for c_i, change in enumerate(_list(entry.get("changes"), f"entry[{e_i}].changes")):
            where = f"entry[{e_i}].changes[{c_i}]"
            change = _obj(change, where)
            field = str(change.get("field") or "")
            value = _obj(change.get("value"), f"{where}.value")
            phone_number_id = _phone_number_id(value)
            if field in ("messages", "smb_message_echoes"):
                out.append((phone_number_id, _parse_messages_value(value, field, f"{where}.value")))
            else:
                event = value.get("event") or value.get("category") or value.get("type")
                label = f"{field} ({event})" if event else field
                out.append((phone_number_id, [Ignored(reason=f"{label} update: nothing to ingest",
                                                      kind=field or "unknown", raw=value)]))
    if not out:
        out.append((None, [Ignored(reason="webhook without changes", kind="empty", raw=data)]))
    return out


def parse_whatsapp_webhook(raw_body: bytes | Mapping[str, Any]) -> list[ParsedItem]:
    """Parse one webhook POST body (bytes, or an already-decoded object) into domain items
    (every change, whatever its number: see :func:`parse_whatsapp_webhook_by_number`)."""
    return [item for _, items in parse_whatsapp_webhook_by_number(raw_body) for item in items]


# --- the connector ---------------------------------------------------------------------------------

class WhatsAppConnector(GraphAccount):
    """One WhatsApp Business phone number on the Cloud API (or the sandbox that mimics it).

    Capabilities: webhooks, send, media, read receipts and typing, templates (with ``waba_id``).
    """

    def __init__(
        self,
        *,
        phone_number_id: str,
        access_token: str,
        app_secret: str,
        verify_token: str = "",
        api_base_url: str = DEFAULT_GRAPH_BASE_URL,
        api_version: str = DEFAULT_GRAPH_VERSION,
        http: httpx.Client | None = None,
        provider: Literal["whatsapp", "sandbox"] = "whatsapp",
        waba_id: str | None = None,
        clock: Clock = utcnow,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        if not phone_number_id:
            raise PermanentError("WhatsApp channel needs a phone_number_id", code="config")
        super().__init__(provider=provider, token=access_token, app_secret=app_secret, verify_token=verify_token,
                         api_base_url=api_base_url, api_version=api_version, http=http, clock=clock,
                         timeout=timeout)
        self.phone_number_id = str(phone_number_id)
        self.waba_id = waba_id

    def identity_object(self) -> str:
        return self.phone_number_id

    # --- webhooks
    def verify_signature(self, raw_body: bytes, headers: Mapping[str, str]) -> None:
        verify_meta_signature(raw_body, headers, self._app_secret, allow_sha1=False)

    def parse_webhook(self, raw_body: bytes) -> list[ParsedItem]:
        return parse_whatsapp_webhook(raw_body)

    def parse_webhook_by_number(self, raw_body: bytes) -> list[tuple[str | None, list[ParsedItem]]]:
        """As :meth:`parse_webhook`, grouped per change with the business phone number id it is for."""
        return parse_whatsapp_webhook_by_number(raw_body)

    # --- sending
    def build_payload(self, request: OutboundRequest) -> dict[str, Any]:
        """The JSON body of ``POST /{phone-number-id}/messages`` for one request (validated)."""
        if not request.recipient_id:
            raise PermanentError("recipient_id is empty", code="invalid_request")
        payload: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                                   "to": request.recipient_id}
        if request.template is not None:
            template = dict(request.template)
            if not template.get("name"):
                raise PermanentError("template needs a 'name'", code="invalid_request")
            lang = template.get("language") or "en_US"
            template["language"] = {"code": lang} if isinstance(lang, str) else lang
            payload.update(type="template", template=template)
        elif request.attachments:
            if len(request.attachments) > 1:
                raise PermanentError("WhatsApp sends one attachment per message; split the request",
                                     code="invalid_request")
            att = request.attachments[0]
            kind = att.kind if att.kind in MEDIA_KINDS else "document"
            media: dict[str, Any] = {}
            if att.provider_media_id:
                media["id"] = att.provider_media_id
            elif att.url:
                media["link"] = att.url
            elif att.data.get("path"):
                media["id"] = self.upload_media(Path(str(att.data["path"])), att.mime_type)
            else:
                raise PermanentError("attachment needs a provider_media_id, a url or data['path']",
                                     code="invalid_request")
            if request.body:
                if kind not in _CAPTION_KINDS:
                    raise PermanentError(f"WhatsApp {kind} messages cannot carry a caption",
                                         code="invalid_request")
                media["caption"] = request.body
            if kind == "document" and att.file_name:
                media["filename"] = att.file_name
            payload.update(type=kind, **{kind: media})
        else:
            if not request.body:
                raise PermanentError("nothing to send: no body, attachment or template", code="invalid_request")
            if len(request.body) > MAX_TEXT_CHARS:
                raise PermanentError(f"text is {len(request.body)} characters; WhatsApp allows {MAX_TEXT_CHARS}",
                                     code="text_too_long")
            payload.update(type="text", text={"body": request.body, "preview_url": False})
        if request.reply_to_provider_message_id:
            payload["context"] = {"message_id": request.reply_to_provider_message_id}
        if request.idempotency_key:
            payload["biz_opaque_callback_data"] = request.idempotency_key[:512]
        return payload

    def send(self, request: OutboundRequest) -> SendResult:
        payload = self.build_payload(request)
        response = self.graph.call("POST", f"{self.phone_number_id}/messages", json_body=payload, once=True)
        messages = response.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict) \
                or not messages[0].get("id"):
            raise PermanentError(f"send answered without a message id: {response!r}"[:500], code="bad_response")
        return SendResult(provider_message_id=str(messages[0]["id"]), sent_at=self._clock(), raw=response)

    def _read(self, provider_message_id: str, *, typing: bool) -> None:
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read",
                                "message_id": provider_message_id}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        self.graph.call("POST", f"{self.phone_number_id}/messages", json_body=body)

    def mark_read(self, recipient_id: str, provider_message_id: str) -> None:
        """Mark an inbound message read (blue ticks); WhatsApp needs only the message id."""
        self._read(provider_message_id, typing=False)

    def show_typing(self, recipient_id: str, provider_message_id: str) -> None:
        """Typing indicator (WhatsApp shows it with the customer's last message marked read)."""
        self._read(provider_message_id, typing=True)

    def list_templates(self) -> list[MessageTemplate]:
        """``GET /{waba-id}/message_templates`` (all pages); needs the ``waba_id`` credential."""
        if not self.waba_id:
            raise PermanentError("listing templates needs the channel's waba_id credential "
                                 "(WhatsApp Business Account id)", code="config")
        out: list[MessageTemplate] = []
        page = self.graph.call("GET", f"{self.waba_id}/message_templates", params={"limit": 100})
        while True:
            for t in page.get("data") or []:
                if isinstance(t, dict) and t.get("name"):
                    out.append(MessageTemplate(name=str(t["name"]), language=str(t.get("language") or ""),
                                               status=str(t.get("status") or ""), category=t.get("category"),
                                               components=tuple(c for c in t.get("components") or []
                                                                if isinstance(c, dict))))
            next_url = (page.get("paging") or {}).get("next")
            if not next_url:
                return out
            page = self.graph.call("GET", str(next_url))

    def upload_media(self, path: Path, mime_type: str | None = None) -> str:
        """Upload a local file (``POST /{phone-number-id}/media``); returns the media id."""
        if not path.is_file():
            raise PermanentError(f"attachment file {path} does not exist", code="invalid_request")
        mime = mime_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as fh:
            response = self.graph.call("POST", f"{self.phone_number_id}/media",
                                       data={"messaging_product": "whatsapp", "type": mime},
                                       files={"file": (path.name, fh, mime)})
        if not response.get("id"):
            raise PermanentError(f"media upload answered without an id: {response!r}"[:500], code="bad_response")
        return str(response["id"])

    def media_info(self, media_id: str) -> dict[str, Any]:
        """``GET /{media-id}``: url (valid ~5 minutes), mime_type, sha256, file_size."""
        return self.graph.call("GET", media_id, params={"phone_number_id": self.phone_number_id})

    def download_media(self, media_id: str, dest_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                       allowed_mime: Iterable[str] | None = DEFAULT_ALLOWED_MIME) -> StoredMedia:
        """Media id -> url -> bytes (with bearer) stored under ``dest_dir`` (e.g. SWITCHBOARD_HOME/media)."""
        info = self.media_info(media_id)
        url = info.get("url")
        if not url:
            raise PermanentError(f"media {media_id} has no download url", code="bad_response")
        size = info.get("file_size")
        if isinstance(size, int | str) and str(size).isdigit() and int(size) > max_bytes:
            raise PermanentError(f"media {media_id} is {size} bytes, more than the limit of {max_bytes}",
                                 code="media_too_large")
        return download_to_dir(self.graph.http, str(url), dest_dir, headers=self.graph.auth_headers,
                               max_bytes=max_bytes, allowed_mime=allowed_mime,
                               declared_mime=info.get("mime_type"), expected_sha256=info.get("sha256"))

    def fetch_media(self, media: MediaRef, dest_dir: Path, *, max_bytes: int) -> StoredMedia:
        if not media.provider_media_id:
            raise PermanentError("the attachment has no media id", code="no_media_id")
        return self.download_media(media.provider_media_id, dest_dir, max_bytes=max_bytes)

    def download_attachments(self, attachments: Iterable[AttachmentRef], dest_dir: Path, *,
                             max_bytes: int = DEFAULT_MAX_BYTES,
                             allowed_mime: Iterable[str] | None = DEFAULT_ALLOWED_MIME,
                             ) -> tuple[AttachmentRef, ...]:
        """Download every media attachment of a parsed message; returns the updated attachments.

        Stored ones get ``sha256``, ``size_bytes``, ``mime_type`` and ``data["path"]``. A refused one
        (too large, type not allowed) keeps ``data["download_error"]`` and its code instead of being
        dropped; retryable errors (network, 5xx, rate limit) are raised so the caller can retry.
        """
        out: list[AttachmentRef] = []
        for att in attachments:
            if att.kind not in MEDIA_KINDS or not att.provider_media_id or "path" in att.data:
                out.append(att)
                continue
            try:
                stored = self.download_media(att.provider_media_id, dest_dir, max_bytes=max_bytes,
                                             allowed_mime=allowed_mime)
            except PermanentError as exc:
                if isinstance(exc, AuthenticationError):
                    raise
                out.append(replace(att, data={**att.data, "download_error": str(exc),
                                              "download_error_code": exc.code}))
                continue
            out.append(replace(att, sha256=stored.sha256, size_bytes=stored.size_bytes,
                               mime_type=att.mime_type or stored.mime_type,
                               data={**att.data, "path": str(stored.path)}))
        return tuple(out)
