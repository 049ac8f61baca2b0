"""Messenger and Instagram connector (Meta Send API, webhooks, Conversations API history).

Webhooks (``object: page`` for Messenger, ``object: instagram``) are verified with
``X-Hub-Signature-256`` falling back to the legacy sha1 ``X-Hub-Signature``, and parsed by the pure
function :func:`parse_meta_webhook`: messages and attachments, echoes (sent from the native inbox or
another app) as OUTBOUND messages, postbacks, reactions, edits, deletions, delivery and read
watermarks (``messaging_seen`` on Instagram). Everything else that is well formed is Ignored with a
reason.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from connectors.base import PayloadError, PermanentError
from connectors.graph import DEFAULT_GRAPH_BASE_URL, DEFAULT_GRAPH_VERSION, DEFAULT_TIMEOUT, GraphAccount
from connectors.signatures import load_json_object, verify_meta_signature
from switchboard import types as domain
from switchboard.clock import Clock, utcnow
from switchboard.types import (
    AttachmentRef,
    AuthorKind,
    ContactRef,
    Ignored,
    InboundMessage,
    OutboundRequest,
    ParsedItem,
    ReadWatermark,
    SendResult,
)

MetaProvider = Literal["messenger", "instagram"]
OBJECT_FOR: dict[str, str] = {"messenger": "page", "instagram": "instagram"}
MAX_TEXT = {"messenger": 2000, "instagram": 1000}
SENDER_ACTIONS = ("typing_on", "typing_off", "mark_seen")
_IGNORED_EVENTS = ("referral", "optin", "account_linking", "pass_thread_control", "take_thread_control",
                   "request_thread_control", "app_roles", "policy_enforcement", "game_play",
                   "messaging_feedback", "checkout_update", "payment", "handover")
_ATTACHMENT_KIND = {"file": "document", "ig_reel": "video", "reel": "video", "story_mention": "image"}


def _ms(value: Any, where: str) -> datetime:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PayloadError(f"{where}: timestamp {value!r} is not a number", code="bad_timestamp") from None
    if number > 1e11:  # milliseconds (Messenger); seconds appear in some Instagram payloads
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"{where}: timestamp {value!r} is out of range", code="bad_timestamp") from None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _id_of(obj: Any, where: str) -> str:
    if not isinstance(obj, dict) or obj.get("id") in (None, ""):
        raise PayloadError(f"{where}.id is missing", code="bad_shape")
    return str(obj["id"])


def _attachments(raw: Any, where: str) -> tuple[AttachmentRef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PayloadError(f"{where} must be a list", code="bad_shape")
    out = []
    for att in raw:
        if not isinstance(att, dict):
            continue
        atype = str(att.get("type") or "file")
        payload = _dict(att.get("payload"))
        data: dict[str, Any] = {k: v for k, v in payload.items() if k != "url"}
        if att.get("title"):
            data["title"] = att["title"]
        if atype == "location" and isinstance(payload.get("coordinates"), dict):
            data.update(latitude=payload["coordinates"].get("lat"), longitude=payload["coordinates"].get("long"))
        out.append(AttachmentRef(kind=_ATTACHMENT_KIND.get(atype, atype), url=payload.get("url"),
                                 provider_media_id=str(payload["attachment_id"]) if payload.get("attachment_id")
                                 else None, data=data))
    return tuple(out)


def _message_event(ev: dict[str, Any], account_id: str | None, bot_app_ids: frozenset[str],
                   where: str) -> ParsedItem:
    msg = ev["message"]
    if not isinstance(msg, dict):
        raise PayloadError(f"{where}.message must be an object", code="bad_shape")
    when = _ms(ev.get("timestamp"), where)
    mid = msg.get("mid")
    if not mid:
        raise PayloadError(f"{where}.message.mid is missing", code="bad_shape")
    sender = _id_of(ev.get("sender"), f"{where}.sender")
    recipient = _id_of(ev.get("recipient"), f"{where}.recipient")
    echo = bool(msg.get("is_echo")) or (account_id is not None and sender == account_id)
    peer = recipient if echo else sender
    if msg.get("is_deleted"):
        return domain.MessageDeletion(provider_message_id=str(mid), deleted_at=when, provider_contact_id=peer, raw=ev)
    attachments = _attachments(msg.get("attachments"), f"{where}.message.attachments")
    text = msg.get("text")
    if msg.get("is_unsupported"):
        content_type = "unsupported"
    elif text is not None and not attachments:
        content_type = "text"
    elif attachments:
        content_type = attachments[0].kind
    else:
        content_type = "unsupported"
    if isinstance(msg.get("quick_reply"), dict):
        attachments += (AttachmentRef(kind="quick_reply", data=dict(msg["quick_reply"])),)
    reply_to = _dict(msg.get("reply_to"))
    author: AuthorKind = "customer"
    if echo:
        app_id = msg.get("app_id")
        author = "bot" if app_id is not None and str(app_id) in bot_app_ids else "agent"
    return InboundMessage(
        provider_message_id=str(mid),
        contact=ContactRef(provider_contact_id=peer),
        sent_at=when,
        body=text,
        content_type=content_type,
        attachments=attachments,
        reply_to_provider_message_id=str(reply_to["mid"]) if reply_to.get("mid") else None,
        direction="OUTBOUND" if echo else "INBOUND",
        author_kind=author,
        raw=ev,
    )


def _messaging_event(ev: Any, account_id: str | None, bot_app_ids: frozenset[str], where: str) -> ParsedItem:
    if not isinstance(ev, dict):
        raise PayloadError(f"{where} must be an object", code="bad_shape")
    if "message" in ev:
        return _message_event(ev, account_id, bot_app_ids, where)
    if isinstance(ev.get("delivery"), dict) or isinstance(ev.get("read"), dict):
        kind = "delivery" if isinstance(ev.get("delivery"), dict) else "read"
        body = ev[kind]
        when = _ms(ev.get("timestamp"), where)
        customer = _id_of(ev.get("sender"), f"{where}.sender")
        watermark = _ms(body["watermark"], f"{where}.{kind}.watermark") if body.get("watermark") else when
        mids = body.get("mids") if isinstance(body.get("mids"), list) else ([body["mid"]] if body.get("mid") else [])
        return ReadWatermark(provider_contact_id=customer, status="DELIVERED" if kind == "delivery" else "READ",
                             watermark=watermark, occurred_at=when,
                             provider_message_ids=tuple(str(m) for m in mids))
    if isinstance(ev.get("postback"), dict):
        pb = ev["postback"]
        when = _ms(ev.get("timestamp"), where)
        sender = _id_of(ev.get("sender"), f"{where}.sender")
        mid = pb.get("mid") or f"postback:{sender}:{int(when.timestamp() * 1000)}"
        return InboundMessage(provider_message_id=str(mid), contact=ContactRef(provider_contact_id=sender),
                              sent_at=when, body=pb.get("title") or pb.get("payload"), content_type="postback",
                              attachments=(AttachmentRef(kind="postback", data=dict(pb)),), raw=ev)
    if isinstance(ev.get("reaction"), dict):
        r = ev["reaction"]
        when = _ms(ev.get("timestamp"), where)
        sender = _id_of(ev.get("sender"), f"{where}.sender")
        target = r.get("mid")
        action = r.get("action", "react")
        body = (r.get("emoji") or r.get("reaction")) if action == "react" else None
        return InboundMessage(
            provider_message_id=f"{target}:{action}:{sender}:{int(when.timestamp() * 1000)}",
            contact=ContactRef(provider_contact_id=sender), sent_at=when, body=body, content_type="reaction",
            reply_to_provider_message_id=str(target) if target else None, raw=ev)
    if isinstance(ev.get("message_edit"), dict):
        edit = ev["message_edit"]
        if not edit.get("mid"):
            raise PayloadError(f"{where}.message_edit.mid is missing", code="bad_shape")
        return domain.MessageEdit(provider_message_id=str(edit["mid"]), new_body=edit.get("text"),
                           edited_at=_ms(ev.get("timestamp"), where),
                           provider_contact_id=(ev.get("sender") or {}).get("id"), raw=ev)
    for key in _IGNORED_EVENTS:
        if key in ev:
            return Ignored(reason=f"{key} event: nothing to ingest", kind=key, raw=ev)
    keys = sorted(k for k in ev if k not in ("sender", "recipient", "timestamp"))
    return Ignored(reason=f"unknown messaging event ({', '.join(keys) or 'empty'})", kind="unknown", raw=ev)


def parse_meta_webhook(raw_body: bytes | Mapping[str, Any], provider: MetaProvider, *,
                       account_id: str | None = None, bot_app_ids: frozenset[str] = frozenset()
                       ) -> list[ParsedItem]:
    """Parse one Messenger (``object: page``) or Instagram (``object: instagram``) webhook body."""
    data = load_json_object(raw_body) if isinstance(raw_body, bytes | bytearray) else dict(raw_body)
    expected = OBJECT_FOR[provider]
    if data.get("object") != expected:
        raise PayloadError(f"not a {provider} webhook: object is {data.get('object')!r}, expected {expected!r}",
                           code="wrong_object")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("webhook has no 'entry' list", code="bad_shape")
    items: list[ParsedItem] = []
    for e_i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PayloadError(f"entry[{e_i}] must be an object", code="bad_shape")
        messaging = entry.get("messaging")
        if messaging is not None:
            if not isinstance(messaging, list):
                raise PayloadError(f"entry[{e_i}].messaging must be a list", code="bad_shape")
            for m_i, ev in enumerate(messaging):
                items.append(_messaging_event(ev, account_id, bot_app_ids, f"entry[{e_i}].messaging[{m_i}]"))
        if isinstance(entry.get("standby"), list) and entry["standby"]:
            items.append(Ignored(reason="standby events (another app controls the thread)", kind="standby",
                                 raw={"standby": entry["standby"]}))
        changes = entry.get("changes")
        if changes is not None:
            if not isinstance(changes, list):
                raise PayloadError(f"entry[{e_i}].changes must be a list", code="bad_shape")
            for c_i, change in enumerate(changes):
                where = f"entry[{e_i}].changes[{c_i}]"
                if not isinstance(change, dict):
                    raise PayloadError(f"{where} must be an object", code="bad_shape")
                field = str(change.get("field") or "")
                value = change.get("value")
                if field in ("messages", "messaging_seen", "message_reactions", "messaging_postbacks",
                             "message_edit") and isinstance(value, dict):
                    items.append(_messaging_event(value, account_id, bot_app_ids, f"{where}.value"))
                else:
                    items.append(Ignored(reason=f"{field or 'unknown'} change: nothing to ingest",
                                         kind=field or "unknown", raw=change))
    if not items:
        items.append(Ignored(reason="webhook without messaging events", kind="empty", raw=data))
    return items


# --- history cursor (opaque to callers) ------------------------------------------------------------

def _encode_cursor(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeDecodeError):
        raise PermanentError(f"history cursor {cursor[:40]!r} is not one this connector produced",
                             code="bad_cursor") from None
    if not isinstance(state, dict):
        raise PermanentError("history cursor is not one this connector produced", code="bad_cursor")
    return state


def history_pending(cursor: str | None) -> bool:
    """True when the cursor stopped mid-way (page limit reached): call ``pull_history`` again."""
    return bool(_decode_cursor(cursor).get("after"))


def _graph_time(value: Any) -> datetime:
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
    except ValueError:
        try:
            return datetime.fromisoformat(str(value)).astimezone(UTC)
        except ValueError:
            raise PermanentError(f"Conversations API returned an unreadable time {value!r}",
                                 code="bad_response") from None


class MetaConnector(GraphAccount):
    """One Facebook Page (Messenger) or Instagram professional account.

    Capabilities: webhooks, send, history (Conversations API), read receipts and typing.
    """

    def __init__(
        self,
        *,
        provider: MetaProvider,
        account_id: str,
        page_access_token: str,
        app_secret: str,
        verify_token: str = "",
        api_base_url: str = DEFAULT_GRAPH_BASE_URL,
        api_version: str = DEFAULT_GRAPH_VERSION,
        bot_app_ids: tuple[str, ...] = (),
        http: httpx.Client | None = None,
        clock: Clock = utcnow,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        if provider not in OBJECT_FOR:
            raise PermanentError(f"MetaConnector serves messenger or instagram, not {provider!r}", code="config")
        if not account_id:
            raise PermanentError(f"{provider} channel needs a page / Instagram account id", code="config")
        super().__init__(provider=provider, token=page_access_token, app_secret=app_secret,
                         verify_token=verify_token, api_base_url=api_base_url, api_version=api_version,
                         http=http, clock=clock, timeout=timeout)
        self._meta_provider: MetaProvider = provider
        self.account_id = str(account_id)
        self._bot_app_ids = frozenset(bot_app_ids)

    # --- webhooks
    def verify_signature(self, raw_body: bytes, headers: Mapping[str, str]) -> None:
        verify_meta_signature(raw_body, headers, self._app_secret, allow_sha1=True)

    def parse_webhook(self, raw_body: bytes) -> list[ParsedItem]:
        return parse_meta_webhook(raw_body, self._meta_provider, account_id=self.account_id,
                                  bot_app_ids=self._bot_app_ids)

    # --- Send API
    def build_payload(self, request: OutboundRequest) -> dict[str, Any]:
        if not request.recipient_id:
            raise PermanentError("recipient_id is empty", code="invalid_request")
        if request.template is not None:
            raise PermanentError(f"{self.provider} has no WhatsApp-style templates; send text with the "
                                 "HUMAN_AGENT tag outside the 24 h window", code="invalid_request")
        if request.attachments and request.body:
            raise PermanentError(f"{self.provider} sends text and attachments as separate messages; "
                                 "enqueue them separately", code="invalid_request")
        message: dict[str, Any]
        if request.attachments:
            if len(request.attachments) > 1:
                raise PermanentError("one attachment per message", code="invalid_request")
            att = request.attachments[0]
            kind = {"document": "file", "sticker": "image"}.get(att.kind, att.kind)
            if kind not in ("image", "video", "audio", "file"):
                raise PermanentError(f"cannot send a {att.kind} attachment on {self.provider}",
                                     code="invalid_request")
            if att.provider_media_id:
                payload: dict[str, Any] = {"attachment_id": att.provider_media_id}
            elif att.url:
                payload = {"url": att.url, "is_reusable": True}
            elif att.data.get("path"):
                payload = {"attachment_id": self.upload_attachment(Path(str(att.data["path"])), kind, att.mime_type)}
            else:
                raise PermanentError("attachment needs a provider_media_id, a public url or data['path']",
                                     code="invalid_request")
            message = {"attachment": {"type": kind, "payload": payload}}
        else:
            if not request.body:
                raise PermanentError("nothing to send: no body or attachment", code="invalid_request")
            limit = MAX_TEXT[self._meta_provider]
            if len(request.body) > limit:
                raise PermanentError(f"text is {len(request.body)} characters; {self.provider} allows {limit}",
                                     code="text_too_long")
            message = {"text": request.body}
        if request.idempotency_key:
            message["metadata"] = request.idempotency_key[:1000]  # echoed back on the echo webhook
        body: dict[str, Any] = {"recipient": {"id": request.recipient_id}, "message": message}
        if request.tag:
            body.update(messaging_type="MESSAGE_TAG", tag=request.tag)
        else:
            body["messaging_type"] = "RESPONSE"
        return body

    def send(self, request: OutboundRequest) -> SendResult:
        response = self.graph.call("POST", f"{self.account_id}/messages", json_body=self.build_payload(request),
                                   once=True)
        mid = response.get("message_id")
        if not mid:
            raise PermanentError(f"send answered without a message_id: {response!r}"[:500], code="bad_response")
        return SendResult(provider_message_id=str(mid), sent_at=self._clock(), raw=response)

    def upload_attachment(self, path: Path, kind: str, mime_type: str | None = None) -> str:
        """Upload a local file (``POST /{account-id}/message_attachments``, multipart ``filedata``;
        ``platform=instagram`` for Instagram, whose account id is then the linked Page's); returns the
        reusable attachment id to send with."""
        if not path.is_file():
            raise PermanentError(f"attachment file {path} does not exist", code="invalid_request")
        mime = mime_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        message = {"attachment": {"type": kind, "payload": {"is_reusable": True}}}
        form = {"message": json.dumps(message)}
        if self._meta_provider == "instagram":
            form["platform"] = "instagram"
        with path.open("rb") as fh:
            response = self.graph.call("POST", f"{self.account_id}/message_attachments", data=form,
                                       files={"filedata": (path.name, fh, mime)})
        if not response.get("attachment_id"):
            raise PermanentError(f"attachment upload answered without an attachment_id: {response!r}"[:500],
                                 code="bad_response")
        return str(response["attachment_id"])

    def sender_action(self, recipient_id: str, action: str) -> None:
        """``typing_on``, ``typing_off`` or ``mark_seen`` for one customer."""
        if action not in SENDER_ACTIONS:
            raise PermanentError(f"sender action must be one of {', '.join(SENDER_ACTIONS)}", code="invalid_request")
        if not recipient_id:
            raise PermanentError(f"{self.provider} marks threads (not messages) as seen: pass recipient_id",
                                 code="needs_recipient")
        self.graph.call("POST", f"{self.account_id}/messages",
                        json_body={"recipient": {"id": recipient_id}, "sender_action": action})

    def mark_read(self, recipient_id: str, provider_message_id: str) -> None:
        """Messenger marks a whole thread seen: the customer's id (``recipient_id``) is what counts."""
        self.sender_action(recipient_id, "mark_seen")

    def show_typing(self, recipient_id: str, provider_message_id: str) -> None:
        self.sender_action(recipient_id, "typing_on")

    # --- Conversations API
    def _conversation_messages(self, conv: dict[str, Any], watermark: float | None) -> list[InboundMessage]:
        out: list[InboundMessage] = []
        block = conv.get("messages") if isinstance(conv.get("messages"), dict) else None
        participants = [p for p in ((conv.get("participants") or {}).get("data") or []) if isinstance(p, dict)]
        customer_meta = next((p for p in participants if str(p.get("id")) != self.account_id), None)
        while block is not None:
            reached_old = False
            for m in block.get("data") or []:
                if not isinstance(m, dict) or not m.get("id"):
                    continue
                created = _graph_time(m.get("created_time"))
                if watermark is not None and created.timestamp() < watermark:
                    reached_old = True
                    continue
                out.append(self._history_message(m, created, customer_meta))
            next_url = (block.get("paging") or {}).get("next")
            if reached_old or not next_url:
                break
            block = self.graph.call("GET", str(next_url))
        return out

    def _history_message(self, m: dict[str, Any], created: datetime,
                         customer_meta: dict[str, Any] | None) -> InboundMessage:
        sender = _dict(m.get("from"))
        to_list = [t for t in ((m.get("to") or {}).get("data") or []) if isinstance(t, dict)]
        outbound = str(sender.get("id")) == self.account_id
        peer: dict[str, Any] = (to_list[0] if to_list else _dict(customer_meta)) if outbound else sender
        if not peer.get("id"):
            raise PermanentError(f"history message {m.get('id')} has no customer id", code="bad_response")
        attachments = []
        for a in ((m.get("attachments") or {}).get("data") or []):
            if not isinstance(a, dict):
                continue
            url = ((a.get("image_data") or {}).get("url") or (a.get("video_data") or {}).get("url")
                   or a.get("file_url"))
            mime = a.get("mime_type")
            kind = str(mime or "file").split("/", 1)[0]
            attachments.append(AttachmentRef(kind=kind if kind in ("image", "video", "audio") else "document",
                                             mime_type=mime, provider_media_id=a.get("id"), url=url,
                                             file_name=a.get("name"), size_bytes=a.get("size")))
        text = m.get("message") or None
        return InboundMessage(
            provider_message_id=str(m["id"]),
            contact=ContactRef(provider_contact_id=str(peer["id"]), display_name=peer.get("name"),
                               username=peer.get("username")),
            sent_at=created,
            body=text,
            content_type="text" if text or not attachments else attachments[0].kind,
            attachments=tuple(attachments),
            direction="OUTBOUND" if outbound else "INBOUND",
            author_kind="agent" if outbound else "customer",
            raw=m,
        )

    def pull_history(self, since_cursor: str | None, *, max_pages: int = 10, page_size: int = 25,
                     messages_per_conversation: int = 50) -> tuple[list[InboundMessage], str | None]:
        """Messages newer than the cursor, oldest first, and the cursor to store for next time.

        Conversations come newest-updated first; paging stops at the first conversation not
        updated since the last complete pull (items exactly at the watermark are fetched again:
        ingestion dedupes by provider message id, so nothing at the boundary is lost). When ``max_pages`` is reached the returned cursor
        resumes where it stopped (see :func:`history_pending`). ``None`` only while the account has
        no conversations at all.
        """
        state = _decode_cursor(since_cursor)
        watermark: float | None = state.get("w")
        after: str | None = state.get("after")
        newest: float | None = state.get("n", watermark)
        fields = (f"id,updated_time,participants,messages.limit({messages_per_conversation})"
                  "{id,created_time,from,to,message,attachments}")
        collected: list[InboundMessage] = []
        for _ in range(max_pages):
            params: dict[str, Any] = {"platform": self._meta_provider, "fields": fields, "limit": page_size}
            if after:
                params["after"] = after
            page = self.graph.call("GET", f"{self.account_id}/conversations", params=params)
            stop = False
            for conv in page.get("data") or []:
                if not isinstance(conv, dict):
                    continue
                updated = _graph_time(conv.get("updated_time")).timestamp()
                newest = updated if newest is None else max(newest, updated)
                if watermark is not None and updated < watermark:
                    stop = True
                    break
                collected.extend(self._conversation_messages(conv, watermark))
            paging = page.get("paging") or {}
            after = ((paging.get("cursors") or {}).get("after")) if paging.get("next") and not stop else None
            if not after:
                break
        collected.sort(key=lambda m: (m.sent_at, m.provider_message_id))
        if after:  # page limit reached: resume from here next time
            return collected, _encode_cursor({"w": watermark, "after": after, "n": newest})
        if newest is None:
            return collected, None
        return collected, _encode_cursor({"w": newest})

    def history_pending(self, cursor: str | None) -> bool:
        return history_pending(cursor)
