"""The HTTP API (`/api/v1`), served by `switchboard serve` beside the webhooks (mounted at ``/api``).

An entrypoint like the pages and the CLI: each handler authenticates the key (its own short
transaction: last use, usage, rate-limit window), checks that the key's scopes grant the route's
:class:`~switchboard.policy.Action` (:func:`switchboard.policy.check_allowed`), translates the input,
calls services (which check the policy again: organization, channel restriction) and commits once.

Every error is an RFC 9457 ``application/problem+json`` document (``type``, ``title``, ``status``,
``detail``; ``errors`` with the fields for 422), mapped from :mod:`switchboard.errors` in one table,
:data:`PROBLEMS`. OpenAPI at ``/api/openapi.json``, interactive docs at ``/api/docs`` (docs/api.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from switchboard import policy
from switchboard.errors import (
    AuthError,
    Conflict,
    InvalidField,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    SwitchboardError,
)
from switchboard.policy import Action
from switchboard.services import (
    api_keys,
    attachments,
    conversations,
    event_webhooks,
    inbox_views,
    outbox,
    outreach,
    reads,
    templates,
)
from switchboard.services.conversations import ConversationView
from switchboard.services.messages import MessageView
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

log = logging.getLogger(__name__)

PROBLEM_TYPE = "https://switchboard.invalid/problems/"  # + slug; documented in docs/api.md
PROBLEM_JSON = "application/problem+json"

# The one mapping of the product's errors to HTTP: (error class, status, slug, title); first match wins.
PROBLEMS: tuple[tuple[type[SwitchboardError], int, str, str], ...] = (
    (AuthError, 401, "unauthorized", "Unauthorized"),
    (PermissionDenied, 403, "forbidden", "Forbidden"),
    (NotFound, 404, "not-found", "Not Found"),
    (Conflict, 409, "conflict", "Conflict"),
    (InvalidInput, 422, "invalid-input", "Unprocessable Content"),
    (RateLimited, 429, "rate-limited", "Too Many Requests"),
    (SwitchboardError, 400, "bad-request", "Bad Request"),
)
_HTTP_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
               405: "method-not-allowed", 409: "conflict", 413: "too-large", 422: "invalid-input",
               429: "rate-limited", 500: "internal-error"}


def problem(status: int, title: str, detail: str, *, slug: str | None = None,
            errors: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_TYPE + (slug or _HTTP_SLUGS.get(status, "error")), "title": title,
                            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def error_problem(exc: SwitchboardError) -> JSONResponse:
    status, slug, title = next((s, sl, t) for cls, s, sl, t in PROBLEMS if isinstance(exc, cls))
    headers: dict[str, str] = {}
    if isinstance(exc, AuthError):
        headers["WWW-Authenticate"] = 'Bearer realm="switchboard"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    errors = [{"field": exc.field, "message": str(exc)}] if isinstance(exc, InvalidField) else None
    return problem(status, title, str(exc), slug=slug, errors=errors, headers=headers or None)


def _field(loc: Sequence[int | str]) -> str:
    """``("body", "template", "name")`` → ``template.name``; ``("header", "idempotency-key")`` → the header."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


# --- models ----------------------------------------------------------------------------------------

class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=1, max_length=16)
    parameters: list[str] | dict[str, list[str]] = Field(
        default_factory=list,
        description='the body\'s {{n}} values in order, or {"body": [...], "header": [...], "button:0": [...]}')


MAX_API_FILE_BYTES = 25 * 1024 * 1024  # through the API; the platform's own limit may be lower


class MediaIn(BaseModel):
    """A file to send (an image or a document), base64-encoded, with an optional caption."""

    model_config = ConfigDict(extra="forbid")
    file_name: str = Field(min_length=1, max_length=255, description="e.g. receipt.pdf")
    mime_type: str | None = Field(None, max_length=255, description="e.g. application/pdf (default: from the name)")
    content_base64: str = Field(min_length=1, max_length=(MAX_API_FILE_BYTES + 2) // 3 * 4,
                                description="the file's bytes, base64 (files up to 25 MB)")
    caption: str | None = Field(None, max_length=outbox.MAX_BODY)


class SendMessageIn(BaseModel):
    """Either ``channel`` + ``to`` (a new or existing conversation with that recipient) or
    ``conversation_id`` (a reply); and exactly one of ``text``, ``template`` and ``media``."""

    model_config = ConfigDict(extra="forbid")
    channel: str | None = Field(None, min_length=1, max_length=64, description="the channel's key, e.g. wa-main")
    to: str | None = Field(None, min_length=1, max_length=320,
                           description="WhatsApp/SMS: a phone number with country code; Telegram: @username or "
                                       "chat id; email: an address")
    conversation_id: int | None = Field(None, ge=1)
    text: str | None = Field(None, min_length=1, max_length=outbox.MAX_BODY)
    template: TemplateIn | None = None
    media: MediaIn | None = None


class MessageOut(BaseModel):
    id: int
    conversation_id: int
    status: str
    direction: str
    author_kind: str
    text: str | None
    content_type: str
    error_code: str | None
    error_message: str | None
    sent_at: datetime
    delivered_at: datetime | None
    read_at: datetime | None

    @classmethod
    def of(cls, m: MessageView) -> MessageOut:
        return cls(id=m.id, conversation_id=m.conversation_id, status=m.status, direction=m.direction,
                   author_kind=m.author_kind, text=None if m.is_deleted else m.body, content_type=m.content_type,
                   error_code=m.error_code, error_message=m.error_message, sent_at=m.sent_at,
                   delivered_at=m.delivered_at, read_at=m.read_at)


class ConversationOut(BaseModel):
    id: int
    channel: str
    provider: str
    contact_id: int
    contact_name: str
    contact_handle: str
    status: str
    assigned_user_id: int | None
    assigned_user_name: str | None
    unread_count: int
    last_message_preview: str | None
    last_message_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, c: ConversationView) -> ConversationOut:
        return cls(id=c.id, channel=c.channel_key, provider=c.provider, contact_id=c.contact_id,
                   contact_name=c.contact_name, contact_handle=c.contact_handle, status=c.status,
                   assigned_user_id=c.assigned_user_id, assigned_user_name=c.assigned_user_name,
                   unread_count=c.unread_count, last_message_preview=c.last_message_preview,
                   last_message_at=c.last_message_at, created_at=c.created_at)


class ContactOut(BaseModel):
    id: int
    provider: str
    provider_contact_id: str
    display_name: str | None
    username: str | None
    phone: str | None
    first_seen_at: datetime
    last_seen_at: datetime


class ConversationPage(BaseModel):
    data: list[ConversationOut]
    next_cursor: str | None


class MessagePage(BaseModel):
    data: list[MessageOut]
    next_cursor: str | None = Field(description="the page of older messages")


class ContactPage(BaseModel):
    data: list[ContactOut]
    next_cursor: str | None


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int | None = Field(None, ge=1)
    email: str | None = Field(None, min_length=3, max_length=320)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, description="your endpoint, http(s)")
    events: list[Literal["message.received", "message.status", "conversation.assigned",
                         "conversation.completed"]] = Field(min_length=1)


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    status: str = Field(description="active, or paused after a day of failed deliveries")
    failing_since: datetime | None
    last_error: str | None
    last_delivery_at: datetime | None
    pending: int
    failed: int
    created_at: datetime

    @classmethod
    def of(cls, v: event_webhooks.SubscriptionView) -> WebhookOut:
        return cls(id=v.id, url=v.url, events=list(v.events), status=v.status, failing_since=v.failing_since,
                   last_error=v.last_error, last_delivery_at=v.last_delivery_at, pending=v.pending, failed=v.failed,
                   created_at=v.created_at)


class CreatedWebhookOut(WebhookOut):
    secret: str = Field(description="the signing secret: shown only in this answer")


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ProblemOut, "content": {PROBLEM_JSON: {}}, "description": d}
    for s, d in ((401, "missing, unknown, revoked or expired key"), (403, "scope or channel not allowed"),
                 (404, "not found in your organization"), (422, "invalid input (with the fields)"),
                 (429, "rate limit; see Retry-After"))}


def request_hash(body: BaseModel) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _parameters(t: TemplateIn) -> dict[str, list[str]]:
    return {"body": list(t.parameters)} if isinstance(t.parameters, list) else dict(t.parameters)


# --- the application -------------------------------------------------------------------------------

def create_api(engine: Engine, secret_key: bytes) -> FastAPI:
    """The FastAPI application (mounted at ``/api`` by :func:`switchboard.http.receiver.create_app`)."""
    api = FastAPI(title="Switchboard API", version="1", openapi_url="/openapi.json", docs_url="/docs",
                  redoc_url=None, description="Send and read messages on every channel (docs/api.md).")
    bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer sb_live_…`")

    def needs(action: Action) -> Callable[..., Actor]:
        """The route's dependency: the request's key, counted, rate limited and allowed ``action``."""

        def key_actor(request: Request,
                      credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> Actor:
            with UnitOfWork(engine) as uow:
                check = api_keys.authenticate(uow, credentials.credentials if credentials else None)
                uow.commit()
            request.state.api_key_id = check.actor.api_key_id
            if check.retry_after is not None:
                raise RateLimited(f"this API key is over its rate limit; retry in {check.retry_after} s",
                                  check.retry_after)
            return policy.check_allowed(check.actor, action)

        return key_actor

    async def count_error(request: Request) -> None:
        key_id = getattr(request.state, "api_key_id", None)
        if key_id is None:
            return

        def write() -> None:
            with UnitOfWork(engine) as uow:
                api_keys.count_usage(uow, key_id, errors=1)
                uow.commit()

        try:
            await run_in_threadpool(write)
        except Exception:  # counting must never change the answer
            log.exception("could not count an API error")

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SwitchboardError)
        await count_error(request)
        return error_problem(exc)

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        await count_error(request)
        errors = [{"field": _field(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
                  for e in exc.errors()]
        return problem(422, "Unprocessable Content", "the request has invalid fields: "
                       + ", ".join(e["field"] for e in errors), errors=errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        await count_error(request)
        return problem(exc.status_code, _title(exc.status_code), str(exc.detail),
                       headers=dict(exc.headers) if exc.headers else None)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("API request failed: %s %s", request.method, request.url.path, exc_info=exc)
        await count_error(request)
        return problem(500, "Internal Server Error", "the request failed on our side; it was logged")

    api.add_exception_handler(SwitchboardError, on_error)
    api.add_exception_handler(RequestValidationError, on_invalid)
    api.add_exception_handler(StarletteHTTPException, on_http)
    api.add_exception_handler(Exception, on_crash)

    v1 = APIRouter(prefix="/v1", responses=ERRORS)

    # --- messages ------------------------------------------------------------------------------

    @v1.post("/messages", status_code=202, response_model=MessageOut, summary="Send a message",
             responses={409: ERRORS[422] | {"description": "Idempotency-Key reused with another body"}})
    def send_message(body: SendMessageIn, actor: Actor = Depends(needs(Action.SEND_MESSAGES)),
                     idempotency_key: Annotated[str | None, Header(min_length=1, max_length=100)] = None
                     ) -> JSONResponse:
        """Queue a message (``PENDING``): the outbox sends it, with the inbox's windows and rate limits.
        With ``Idempotency-Key``, a retry returns the first answer; another body with that key is 409."""
        assert actor.api_key_id is not None
        digest = request_hash(body)
        with UnitOfWork(engine) as uow:
            if idempotency_key is not None:
                prior = api_keys.replayed_response(uow, actor.api_key_id, idempotency_key, digest)
                if prior is not None:
                    return JSONResponse(prior.body, status_code=prior.status_code,
                                        headers={"Idempotent-Replayed": "true"})
            message_key = f"api:{actor.api_key_id}:{idempotency_key or uuid.uuid4().hex}"
            out = MessageOut.of(_send(uow, actor, body, message_key)).model_dump(mode="json")
            stored = api_keys.StoredResponse(202, out)
            if idempotency_key is not None:
                stored = api_keys.remember_response(uow, actor.api_key_id, idempotency_key, digest, 202, out)
            api_keys.count_usage(uow, actor.api_key_id, messages_sent=1)
            uow.commit()
        return JSONResponse(stored.body, status_code=stored.status_code)

    @v1.get("/messages/{message_id}", response_model=MessageOut, summary="A message and its status")
    def get_message(message_id: Annotated[int, Path(ge=1)],
                    actor: Actor = Depends(needs(Action.READ_MESSAGES))) -> MessageOut:
        with UnitOfWork(engine) as uow:
            return MessageOut.of(reads.get_message(uow, actor, message_id))

    # --- conversations -------------------------------------------------------------------------

    @v1.get("/conversations", response_model=ConversationPage, summary="Conversations, newest activity first")
    def list_conversations(
        actor: Actor = Depends(needs(Action.READ_CONVERSATIONS)),
        status: Literal["OPEN", "PENDING", "ASSIGNED", "COMPLETED"] | None = None,
        channel: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        assignee: Annotated[int | None, Query(ge=1, description="a user id")] = None,
        updated_since: datetime | None = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=inbox_views.MAX_LIMIT)] = 50,
    ) -> ConversationPage:
        with UnitOfWork(engine) as uow:
            channel_id = None if channel is None else _channel(uow, actor, channel)
            page = inbox_views.list_conversations(uow, actor, status=status, channel_id=channel_id,
                                                  assigned_user_id=assignee, updated_since=_aware(updated_since),
                                                  cursor=_cursor(cursor), limit=limit)
        return ConversationPage(data=[ConversationOut.of(c) for c in page.items], next_cursor=page.next_cursor)

    @v1.get("/conversations/{conversation_id}/messages", response_model=MessagePage,
            summary="A conversation's messages, a page at a time (oldest first within a page)")
    def conversation_messages(
        conversation_id: Annotated[int, Path(ge=1)],
        actor: Actor = Depends(needs(Action.READ_MESSAGES)),
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=inbox_views.MAX_LIMIT)] = 50,
    ) -> MessagePage:
        with UnitOfWork(engine) as uow:
            page = inbox_views.get_thread(uow, actor, conversation_id, before=_cursor(cursor), limit=limit)
        return MessagePage(data=[MessageOut.of(m) for m in page.items], next_cursor=page.next_cursor)

    @v1.post("/conversations/{conversation_id}/assign", response_model=ConversationOut,
             summary="Assign a conversation to a user (by id or email)")
    def assign(conversation_id: Annotated[int, Path(ge=1)], body: AssignIn,
               actor: Actor = Depends(needs(Action.WRITE_CONVERSATIONS))) -> ConversationOut:
        if (body.user_id is None) == (body.email is None):
            raise InvalidField("user_id", "give either user_id or email (exactly one)")
        with UnitOfWork(engine) as uow:
            user_id = body.user_id if body.user_id is not None else _named(
                "email", reads.user_id_by_email, uow, actor, body.email or "")
            view = conversations.reassign(uow, actor, conversation_id, user_id)
            uow.commit()
        return ConversationOut.of(view)

    @v1.post("/conversations/{conversation_id}/complete", response_model=ConversationOut,
             summary="Complete a conversation")
    def complete(conversation_id: Annotated[int, Path(ge=1)],
                 actor: Actor = Depends(needs(Action.WRITE_CONVERSATIONS))) -> ConversationOut:
        with UnitOfWork(engine) as uow:
            view = conversations.complete(uow, actor, conversation_id)
            uow.commit()
        return ConversationOut.of(view)

    # --- contacts ------------------------------------------------------------------------------

    @v1.get("/contacts", response_model=ContactPage, summary="Contacts, most recently seen first")
    def list_contacts(
        actor: Actor = Depends(needs(Action.READ_CONTACTS)),
        search: Annotated[str | None, Query(max_length=200)] = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=inbox_views.MAX_LIMIT)] = 50,
    ) -> ContactPage:
        with UnitOfWork(engine) as uow:
            page = reads.list_contacts(uow, actor, search=search, cursor=_cursor(cursor), limit=limit)
        return ContactPage(data=[ContactOut(**asdict(c)) for c in page.items], next_cursor=page.next_cursor)

    # --- event webhooks ------------------------------------------------------------------------

    @v1.get("/webhooks", response_model=list[WebhookOut], summary="Your event webhooks")
    def list_webhooks(actor: Actor = Depends(needs(Action.MANAGE_WEBHOOKS))) -> list[WebhookOut]:
        with UnitOfWork(engine) as uow:
            return [WebhookOut.of(v) for v in event_webhooks.list_event_webhooks(uow, actor)]

    @v1.post("/webhooks", status_code=201, response_model=CreatedWebhookOut,
             summary="Subscribe a URL to events (the signing secret is in this answer only)")
    def create_webhook(body: WebhookIn, actor: Actor = Depends(needs(Action.MANAGE_WEBHOOKS))) -> CreatedWebhookOut:
        with UnitOfWork(engine) as uow:
            created = event_webhooks.create_event_webhook(uow, actor, url=body.url, events=body.events,
                                                          secret_key=secret_key)
            uow.commit()
        return CreatedWebhookOut(**WebhookOut.of(created.view).model_dump(), secret=created.secret)

    @v1.delete("/webhooks/{webhook_id}", status_code=204, summary="Delete an event webhook")
    def delete_webhook(webhook_id: Annotated[int, Path(ge=1)],
                       actor: Actor = Depends(needs(Action.MANAGE_WEBHOOKS))) -> None:
        with UnitOfWork(engine) as uow:
            event_webhooks.delete_event_webhook(uow, actor, webhook_id)
            uow.commit()

    @v1.post("/webhooks/{webhook_id}/resume", response_model=WebhookOut, summary="Resume a paused event webhook")
    def resume_webhook(webhook_id: Annotated[int, Path(ge=1)],
                       actor: Actor = Depends(needs(Action.MANAGE_WEBHOOKS))) -> WebhookOut:
        with UnitOfWork(engine) as uow:
            view = event_webhooks.resume_event_webhook(uow, actor, webhook_id)
            uow.commit()
        return WebhookOut.of(view)

    @v1.get("/webhooks/{webhook_id}/deliveries", response_model=list[DeliveryOut],
            summary="An event webhook's latest deliveries")
    def webhook_deliveries(webhook_id: Annotated[int, Path(ge=1)],
                           actor: Actor = Depends(needs(Action.MANAGE_WEBHOOKS)),
                           limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[DeliveryOut]:
        with UnitOfWork(engine) as uow:
            return [DeliveryOut(**asdict(d)) for d in
                    event_webhooks.list_event_deliveries(uow, actor, webhook_id, limit=limit)]

    api.include_router(v1)
    return api


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _aware(at: datetime | None) -> datetime | None:
    if at is not None and at.tzinfo is None:
        raise InvalidField("updated_since", "give a time with its offset, e.g. 2026-12-01T09:00:00Z")
    return at


def _cursor(cursor: str | None) -> str | None:
    if cursor:
        try:
            inbox_views.decode_cursor(cursor)
        except InvalidInput as exc:
            raise InvalidField("cursor", str(exc)) from None
    return cursor or None


def _named(field: str, lookup: Callable[..., int], *args: Any) -> int:
    """An id looked up by a name in the request: a name that finds nothing is a 422 on that field."""
    try:
        return lookup(*args)
    except NotFound as exc:
        raise InvalidField(field, str(exc)) from None


def _channel(uow: UnitOfWork, actor: Actor, key: str) -> int:
    return _named("channel", reads.channel_id_by_key, uow, actor, key)


def _template_id(uow: UnitOfWork, actor: Actor, channel_id: int, t: TemplateIn) -> int:
    return _named("template.name", reads.template_id_by_name, uow, actor, channel_id, t.name, t.language)


def _file(media: MediaIn) -> attachments.OutgoingFile:
    try:
        data = base64.b64decode(media.content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidField("media.content_base64", "is not base64") from None
    return attachments.OutgoingFile(media.file_name, media.mime_type, data, media.caption)


def _send(uow: UnitOfWork, actor: Actor, body: SendMessageIn, key: str) -> MessageView:
    """Translate the send request into the outbox services (reply, template, first message)."""
    if [body.text, body.template, body.media].count(None) != 2:
        raise InvalidField("text", "give text, template or media (exactly one)")
    file = _file(body.media) if body.media is not None else None
    if body.conversation_id is not None:
        if body.channel is not None or body.to is not None:
            raise InvalidField("conversation_id", "give either conversation_id, or channel and to (not both)")
        if file is not None:
            return attachments.enqueue_attachment(uow, actor, body.conversation_id, file_name=file.file_name,
                                                  mime_type=file.mime_type, data=file.data, caption=file.caption,
                                                  idempotency_key=key)
        if body.template is None:
            return outbox.enqueue_reply(uow, actor, body.conversation_id, body.text or "", idempotency_key=key)
        channel_id = inbox_views.get_conversation(uow, actor, body.conversation_id).channel_id
        return templates.enqueue_template(uow, actor, body.conversation_id,
                                          _template_id(uow, actor, channel_id, body.template),
                                          _parameters(body.template), idempotency_key=key)
    if body.channel is None or body.to is None:
        raise InvalidField("channel" if body.channel is None else "to",
                           "give channel and to (a new conversation), or conversation_id (a reply)")
    channel_id = _channel(uow, actor, body.channel)
    if body.template is None:
        return outreach.start_conversation(uow, actor, channel_id, body.to, body=body.text, file=file,
                                           idempotency_key=key)
    return outreach.start_conversation(uow, actor, channel_id, body.to,
                                       template_id=_template_id(uow, actor, channel_id, body.template),
                                       parameters=_parameters(body.template), idempotency_key=key)
