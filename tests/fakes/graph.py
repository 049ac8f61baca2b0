"""A fake of the Graph API (Messenger / Instagram Send API, Conversations API, generic errors).

Behaviour is programmable from the test: queue forced responses, add conversations, read the
requests it received. Served over real HTTP with :func:`tests.fakes.server.run_asgi`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def graph_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class Forced:
    status: int
    body: Any = None  # dict -> JSON, str -> text
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class FakeConversation:
    id: str
    customer_id: str
    customer_name: str
    messages: list[dict[str, Any]] = field(default_factory=list)  # oldest first

    def updated_time(self) -> float:
        return max((m["_ts"] for m in self.messages), default=0.0)


class FakeGraph:
    def __init__(self, *, token: str, account_id: str, conversations_page: int = 2,
                 messages_page: int = 2) -> None:
        self.token = token
        self.account_id = account_id
        self.forced: list[Forced] = []
        self.requests: list[dict[str, Any]] = []
        self.conversations: dict[str, FakeConversation] = {}
        self.conversations_page = conversations_page
        self.messages_page = messages_page
        self.base_url = ""  # set by the test after the server starts (for absolute `next` urls)
        self.templates: list[dict[str, Any]] = []  # WhatsApp message templates of the account
        self.account_name = "Our Page"
        # debug_token: unix times (0 = never), and whether Meta still considers the token valid
        self.token_expires_at = 0
        self.data_access_expires_at = 0
        self.token_valid = True
        self.uploads: dict[str, bytes] = {}  # attachment id -> the uploaded file (Messenger upload API)
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[
            Route("/{version}/debug_token", self._debug_token, methods=["GET"]),
            Route("/{version}/{obj}", self._get_object, methods=["GET"]),
            Route("/{version}/{obj}/messages", self._post_messages, methods=["POST"]),
            Route("/{version}/{obj}/message_attachments", self._post_attachment, methods=["POST"]),
            Route("/{version}/{obj}/messages", self._get_messages, methods=["GET"]),
            Route("/{version}/{obj}/conversations", self._get_conversations, methods=["GET"]),
            Route("/{version}/{obj}/message_templates", self._get_templates, methods=["GET"]),
        ])

    # --- programming the fake
    def add_message(self, customer_id: str, ts: float, text: str, *, outbound: bool = False,
                    name: str = "Customer") -> str:
        conv = self.conversations.setdefault(customer_id, FakeConversation(f"t_{customer_id}", customer_id, name))
        mid = f"m_{next(self._ids)}"
        me = {"id": self.account_id, "name": "Our Page"}
        them = {"id": customer_id, "name": name}
        conv.messages.append({"id": mid, "created_time": graph_time(ts), "_ts": ts, "message": text,
                              "from": me if outbound else them, "to": {"data": [them if outbound else me]}})
        return mid

    # --- handlers
    async def _forced(self) -> Response | None:
        if not self.forced:
            return None
        f = self.forced.pop(0)
        if f.delay:
            await asyncio.sleep(f.delay)
        if isinstance(f.body, dict):
            return JSONResponse(f.body, status_code=f.status, headers=f.headers)
        return Response(str(f.body or ""), status_code=f.status, headers=f.headers)

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException",
                                           "code": 190, "fbtrace_id": "x"}}, status_code=401)
        return None

    async def _post_messages(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"path": request.url.path, "json": body})
        problem = self._auth(request) or await self._forced()
        if problem is not None:
            return problem
        if body.get("messaging_product") == "whatsapp":  # the WhatsApp Cloud API's answer
            return JSONResponse({"messaging_product": "whatsapp", "contacts": [{"input": body.get("to")}],
                                 "messages": [{"id": f"wamid.{next(self._ids)}"}]})
        recipient = body["recipient"]["id"]
        if "sender_action" in body:
            return JSONResponse({"recipient_id": recipient})
        return JSONResponse({"recipient_id": recipient, "message_id": f"m_sent_{next(self._ids)}"})

    async def _post_attachment(self, request: Request) -> Response:
        """Messenger's Attachment Upload API: multipart ``message`` (JSON) and ``filedata``."""
        form = await request.form()
        upload = form.get("filedata")
        message = json.loads(str(form.get("message") or "{}"))
        data = await upload.read() if isinstance(upload, UploadFile) else b""
        self.requests.append({"path": request.url.path, "message": message, "size": len(data),
                              "platform": form.get("platform"),
                              "file_name": getattr(upload, "filename", None),
                              "content_type": getattr(upload, "content_type", None)})
        problem = self._auth(request) or await self._forced()
        if problem is not None:
            return problem
        if not data or not message.get("attachment", {}).get("type"):
            return JSONResponse({"error": {"message": "(#100) filedata and message.attachment.type are required",
                                           "type": "OAuthException", "code": 100}}, status_code=400)
        attachment_id = f"att_{next(self._ids)}"
        self.uploads[attachment_id] = data
        return JSONResponse({"attachment_id": attachment_id})

    def _page(self, items: list[Any], request: Request, size: int) -> tuple[list[Any], dict[str, Any]]:
        after = request.query_params.get("after")
        start = int(base64.b64decode(after).decode()) if after else 0
        chunk = items[start:start + size]
        paging: dict[str, Any] = {"cursors": {"before": base64.b64encode(str(start).encode()).decode()}}
        if start + size < len(items):
            nxt = base64.b64encode(str(start + size).encode()).decode()
            paging["cursors"]["after"] = nxt
            paging["next"] = f"{self.base_url}{request.url.path}?after={nxt}"
        return chunk, paging

    @staticmethod
    def _public(m: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in m.items() if not k.startswith("_")}

    async def _get_conversations(self, request: Request) -> Response:
        self.requests.append({"path": request.url.path, "params": dict(request.query_params)})
        problem = self._auth(request) or await self._forced()
        if problem is not None:
            return problem
        convs = sorted(self.conversations.values(), key=lambda c: c.updated_time(), reverse=True)
        chunk, paging = self._page(convs, request, int(request.query_params.get("limit", self.conversations_page)))
        data = []
        for conv in chunk:
            newest_first = [self._public(m) for m in reversed(conv.messages)]
            msgs = newest_first[:self.messages_page]
            msg_paging: dict[str, Any] = {}
            if len(newest_first) > self.messages_page:
                nxt = base64.b64encode(str(self.messages_page).encode()).decode()
                msg_paging = {"cursors": {"after": nxt},
                              "next": f"{self.base_url}/v21.0/{conv.id}/messages?after={nxt}"}
            data.append({"id": conv.id, "updated_time": graph_time(conv.updated_time()),
                         "participants": {"data": [{"id": conv.customer_id, "name": conv.customer_name},
                                                   {"id": self.account_id, "name": "Our Page"}]},
                         "messages": {"data": msgs, "paging": msg_paging}})
        return JSONResponse({"data": data, "paging": paging})

    async def _get_messages(self, request: Request) -> Response:
        self.requests.append({"path": request.url.path, "params": dict(request.query_params)})
        problem = self._auth(request) or await self._forced()
        if problem is not None:
            return problem
        conv = next((c for c in self.conversations.values() if c.id == request.path_params["obj"]), None)
        if conv is None:
            return JSONResponse({"error": {"message": "no such thread", "code": 100}}, status_code=400)
        newest_first = [self._public(m) for m in reversed(conv.messages)]
        chunk, paging = self._page(newest_first, request, self.messages_page)
        return JSONResponse({"data": chunk, "paging": paging})

    async def _get_object(self, request: Request) -> Response:
        """``GET /me`` or ``GET /{account id}``: the account the token belongs to (a connection test)."""
        self.requests.append({"path": request.url.path, "params": dict(request.query_params)})
        problem = self._auth(request) or await self._forced()
        if problem is not None:
            return problem
        obj = request.path_params["obj"]
        if obj not in ("me", self.account_id):
            return JSONResponse({"error": {"message": f"Object with ID '{obj}' does not exist", "code": 100,
                                           "error_subcode": 33}}, status_code=400)
        return JSONResponse({"id": self.account_id, "name": self.account_name})

    async def _debug_token(self, request: Request) -> Response:
        self.requests.append({"path": request.url.path, "params": dict(request.query_params)})
        problem = self._auth(request) or await self._forced()
        if problem is not None:
            return problem
        data: dict[str, Any] = {"app_id": "1", "type": "SYSTEM_USER", "is_valid": self.token_valid,
                                "expires_at": self.token_expires_at,
                                "data_access_expires_at": self.data_access_expires_at,
                                "scopes": ["whatsapp_business_messaging"]}
        if not self.token_valid:
            data["error"] = {"code": 190, "message": "Error validating access token: Session has expired"}
        return JSONResponse({"data": data})

    async def _get_templates(self, request: Request) -> Response:
        self.requests.append({"path": request.url.path, "params": dict(request.query_params)})
        problem = self._auth(request) or await self._forced()
        if problem is not None:
            return problem
        chunk, paging = self._page(self.templates, request, 2)  # small pages, whatever the limit asked
        return JSONResponse({"data": chunk, "paging": paging})
