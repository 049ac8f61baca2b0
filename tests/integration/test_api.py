"""The HTTP API over real HTTP (the receiver app with the API mounted, uvicorn on 127.0.0.1) against the
real PostgreSQL: keys (401), scopes and channel restriction (403), other organizations (404), field
errors (422), idempotency (replay, 409), the rate limit (429 + Retry-After), problem+json everywhere,
and the endpoints' answers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from switchboard.clock import utcnow
from switchboard.db.schema import ApiKey, ApiKeyUsage, AuditLog, Message, MessageTemplate
from switchboard.http.receiver import create_app
from switchboard.services.api_keys import create_api_key, revoke_api_key
from switchboard.services.ingest import ingest_items
from switchboard.services.templates import sync_templates
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from tests.fakes.server import run_asgi
from tests.integration.services.conftest import KEY, World, build_world, committing

PROBLEM = "application/problem+json"
ALL_SCOPES = ["messages:send", "messages:read", "conversations:read", "conversations:write", "contacts:read"]
WELCOME = {"name": "welcome", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
           "components": [{"type": "BODY", "text": "Hi {{1}}, this is Acme."}]}


@dataclass
class Api:
    world: World
    base: str
    client: httpx.Client
    fresh_conv: int  # a WhatsApp conversation whose customer wrote a minute ago (free text allowed)
    old_conv: int  # a WhatsApp conversation whose customer wrote months ago (template only)
    tg_conv: int

    def key(self, scopes: list[str] | None = None, *, org: int | None = None, channels: list[str] | None = None,
            rate: int = 600, **kw: Any) -> str:
        with committing(self.world.engine) as u:
            return create_api_key(u, Actor.system(org or self.world.org), name="test", scopes=scopes or ALL_SCOPES,
                                  channel_keys=channels, rate_limit_per_minute=rate, **kw).key

    def call(self, method: str, path: str, key: str | None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.client.request(method, f"{self.base}/api/v1{path}", headers=headers, **kw)


def _inbound(world: World, channel: int, contact: str, pmid: str, minutes_ago: float, name: str) -> None:
    sent = utcnow() - timedelta(minutes=minutes_ago)
    with committing(world.engine) as u:
        ingest_items(u, channel_id=channel, now=sent, items=[InboundMessage(
            pmid, ContactRef(contact, display_name=name), sent, f"hello from {name}")])


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    world = build_world(engine)
    _inbound(world, world.wa, "4915100000001", "wamid.fresh", 1, "Fresh Fiona")
    _inbound(world, world.wa, "4915100000002", "wamid.old", 60 * 24 * 60, "Old Otto")
    _inbound(world, world.tg, "777001", "tg.1", 5, "Tele Tom")
    with committing(engine) as u:
        sync_templates(u, Actor.system(world.org), world.wa, [WELCOME])
    with run_asgi(create_app(engine, KEY)) as base, httpx.Client(timeout=30) as client:
        yield Api(world, base, client, world.conversation(world.wa, "4915100000001"),
                  world.conversation(world.wa, "4915100000002"), world.conversation(world.tg, "777001"))


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"] and body["detail"]
    return dict(body)


def _usage(engine: Engine) -> dict[str, int]:
    with UnitOfWork(engine) as u:
        row = u.session.execute(select(func.sum(ApiKeyUsage.requests), func.sum(ApiKeyUsage.messages_sent),
                                       func.sum(ApiKeyUsage.errors))).one()
    return {"requests": int(row[0] or 0), "messages_sent": int(row[1] or 0), "errors": int(row[2] or 0)}


def test_a_missing_unknown_revoked_or_expired_key_is_401(api: Api) -> None:
    good = api.key()
    assert api.call("GET", "/conversations", good).status_code == 200
    revoked = api.key()
    with committing(api.world.engine) as u:
        key_id = u.session.execute(select(ApiKey.id).order_by(ApiKey.id.desc())).scalars().first()
        assert key_id is not None
        revoke_api_key(u, Actor.system(api.world.org), key_id)
    expired = api.key(expires_in_days=1, now=utcnow() - timedelta(days=2))
    cases = {None: "required", "sb_live_not-a-key": "not valid", revoked: "revoked", expired: "expired"}
    for key, why in cases.items():
        r = api.call("GET", "/conversations", key)
        body = _problem(r, 401)
        assert why in body["detail"]
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert _problem(api.call("GET", "/conversations", None, headers={"Authorization": f"Basic {good}"}), 401)


def test_a_missing_scope_or_a_channel_outside_the_restriction_is_403(api: Api) -> None:
    reader = api.key(["messages:read"])
    r = api.call("POST", "/messages", reader, json={"conversation_id": api.fresh_conv, "text": "hi"})
    assert "messages:send" in _problem(r, 403)["detail"]
    assert "conversations:read" in _problem(api.call("GET", "/conversations", reader), 403)["detail"]
    assert _problem(api.call("GET", "/contacts", reader), 403)
    assert _problem(api.call("POST", f"/conversations/{api.fresh_conv}/complete", reader), 403)
    assert api.call("GET", f"/conversations/{api.fresh_conv}/messages", reader).status_code == 200

    telegram_only = api.key(channels=["tg"])
    r = api.call("GET", f"/conversations/{api.fresh_conv}/messages", telegram_only)
    assert "restricted" in _problem(r, 403)["detail"]
    r = api.call("POST", "/messages", telegram_only, json={"conversation_id": api.fresh_conv, "text": "hi"})
    _problem(r, 403)
    r = api.call("POST", "/messages", telegram_only, json={"channel": "wa-main", "to": "+4915100000009", "text": "x"})
    _problem(r, 403)
    listed = api.call("GET", "/conversations", telegram_only).json()["data"]
    assert [c["id"] for c in listed] == [api.tg_conv]
    assert _problem(api.call("GET", "/conversations", telegram_only, params={"channel": "wa-main"}), 403)
    contacts = api.call("GET", "/contacts", telegram_only).json()["data"]
    assert [c["provider_contact_id"] for c in contacts] == ["777001"]
    with UnitOfWork(api.world.engine) as u:
        assert u.session.execute(select(func.count()).select_from(Message)
                                 .where(Message.direction == "OUTBOUND")).scalar_one() == 0


def test_every_id_of_another_organization_is_404_like_a_missing_one(api: Api) -> None:
    other = api.key(org=api.world.org2)
    mine = api.key()
    sent = api.call("POST", "/messages", mine, json={"conversation_id": api.fresh_conv, "text": "hello"}).json()
    missing = 9_999_999
    for path, method in (("/messages/{}", "GET"), ("/conversations/{}/messages", "GET"),
                         ("/conversations/{}/complete", "POST")):
        target = sent["id"] if path.startswith("/messages") else api.fresh_conv
        foreign = _problem(api.call(method, path.format(target), other), 404)
        absent = _problem(api.call(method, path.format(missing), other), 404)
        assert foreign["detail"].replace(str(target), "N") == absent["detail"].replace(str(missing), "N")
    r = api.call("POST", f"/conversations/{api.fresh_conv}/assign", other, json={"user_id": api.world.a1.user_id})
    _problem(r, 404)
    r = api.call("POST", "/messages", other, json={"conversation_id": api.fresh_conv, "text": "hi"})
    _problem(r, 404)
    assert api.call("GET", "/conversations", other).json()["data"] == []
    assert api.call("GET", "/contacts", other).json()["data"] == []
    r = api.call("POST", "/messages", other, json={"channel": "tg", "to": "777001", "text": "hi"})
    assert _problem(r, 422)["errors"][0]["field"] == "channel"  # org2 has no channel 'tg'


def test_bad_input_is_422_with_the_field(api: Api) -> None:
    key = api.key()

    def field_of(r: httpx.Response) -> list[str]:
        return [e["field"] for e in _problem(r, 422)["errors"]]

    assert field_of(api.call("POST", "/messages", key, json={"channel": "wa-main", "text": "x"})) == ["to"]
    assert field_of(api.call("POST", "/messages", key, json={"conversation_id": api.fresh_conv})) == ["text"]
    assert field_of(api.call("POST", "/messages", key, json={"conversation_id": api.fresh_conv, "text": "x",
                                                             "template": {"name": "w", "language": "en"}})) == ["text"]
    assert field_of(api.call("POST", "/messages", key, json={"conversation_id": "abc", "text": "x"})) == [
        "conversation_id"]
    assert field_of(api.call("POST", "/messages", key, json={"conversation_id": 1, "text": "x", "bogus": 1})) == [
        "bogus"]
    assert field_of(api.call("POST", "/messages", key, json={"conversation_id": 1, "text": "x" * 5000})) == ["text"]
    assert field_of(api.call("POST", "/messages", key, json={"channel": "nope", "to": "1", "text": "x"})) == [
        "channel"]
    assert field_of(api.call("POST", "/messages", key, json={"conversation_id": api.fresh_conv,
                                                             "template": {"name": "nope", "language": "en"}})) == [
        "template.name"]
    assert field_of(api.call("GET", "/conversations", key, params={"limit": 0})) == ["limit"]
    assert field_of(api.call("GET", "/conversations", key, params={"status": "LOST"})) == ["status"]
    assert field_of(api.call("GET", "/conversations", key, params={"cursor": "%%%"})) == ["cursor"]
    assert field_of(api.call("GET", "/messages/abc", key)) == ["message_id"]
    assert field_of(api.call("POST", "/messages", key, content=b"{not json",
                             headers={"Content-Type": "application/json"}))
    # the messaging window refuses free text months after the customer's last message: its sentence
    r = api.call("POST", "/messages", key, json={"conversation_id": api.old_conv, "text": "are you there?"})
    assert "24 hours" in _problem(r, 422)["detail"]
    # ...while an approved template may be sent
    r = api.call("POST", "/messages", key, json={"conversation_id": api.old_conv,
                                                 "template": {"name": "welcome", "language": "en_US",
                                                              "parameters": ["Otto"]}})
    assert r.status_code == 202, r.text
    assert r.json()["text"] == "Hi Otto, this is Acme." and r.json()["content_type"] == "template"
    unknown = api.call("GET", "/nothing-here", key)
    assert _problem(unknown, 404)["type"].endswith("/not-found")
    assert _problem(api.call("DELETE", "/contacts", key), 405)


def test_an_idempotent_retry_returns_the_first_answer_and_another_body_is_409(api: Api) -> None:
    key = api.key()
    body = {"channel": "tg", "to": "777001", "text": "your order shipped"}
    first = api.call("POST", "/messages", key, json=body, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "PENDING" and first.json()["conversation_id"] == api.tg_conv
    again = api.call("POST", "/messages", key, json=body, headers={"Idempotency-Key": "order-1"})
    assert (again.status_code, again.json()) == (202, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    other = api.call("POST", "/messages", key, json={**body, "text": "something else"},
                     headers={"Idempotency-Key": "order-1"})
    assert "order-1" in _problem(other, 409)["detail"]
    # the same Idempotency-Key of another API key is another request
    second_key = api.key()
    assert api.call("POST", "/messages", second_key, json=body, headers={"Idempotency-Key": "order-1"}
                    ).json()["id"] != first.json()["id"]
    # without the header every request is a new message
    a = api.call("POST", "/messages", key, json=body).json()["id"]
    b = api.call("POST", "/messages", key, json=body).json()["id"]
    assert len({first.json()["id"], a, b}) == 3
    with UnitOfWork(api.world.engine) as u:
        assert u.session.execute(select(func.count()).select_from(Message)
                                 .where(Message.direction == "OUTBOUND")).scalar_one() == 4


def test_the_rate_limit_is_429_with_retry_after_and_usage_is_counted(api: Api) -> None:
    key = api.key(rate=3)
    statuses = []
    for _ in range(8):  # 3 a minute: 8 requests cannot all pass, even across a minute boundary
        r = api.call("GET", "/conversations", key)
        statuses.append(r.status_code)
        if r.status_code == 429:
            body = _problem(r, 429)
            assert 1 <= int(r.headers["retry-after"]) <= 60 and "rate limit" in body["detail"]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses
    assert api.call("POST", "/messages", api.key(), json={"channel": "tg", "to": "777001", "text": "hi"}
                    ).status_code == 202
    usage = _usage(api.world.engine)
    assert usage == {"requests": 9, "messages_sent": 1, "errors": statuses.count(429)}


def test_send_read_and_work_conversations(api: Api) -> None:
    key = api.key()
    # a first message to a new Telegram chat: a new contact and conversation
    r = api.call("POST", "/messages", key, json={"channel": "tg", "to": "888002", "text": "welcome!"})
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["status"] == "PENDING" and sent["text"] == "welcome!" and sent["conversation_id"] != api.tg_conv
    got = api.call("GET", f"/messages/{sent['id']}", key).json()
    assert got["status"] == "PENDING" and got["error_code"] is None
    # a reply in an open WhatsApp conversation
    reply = api.call("POST", "/messages", key, json={"conversation_id": api.fresh_conv, "text": "on it"}).json()
    thread = api.call("GET", f"/conversations/{api.fresh_conv}/messages", key, params={"limit": 1}).json()
    assert [m["id"] for m in thread["data"]] == [reply["id"]] and thread["next_cursor"]
    older = api.call("GET", f"/conversations/{api.fresh_conv}/messages", key,
                     params={"limit": 1, "cursor": thread["next_cursor"]}).json()
    assert [m["direction"] for m in older["data"]] == ["INBOUND"] and older["next_cursor"] is None
    # the conversation list, a page at a time, and its filters
    seen: list[int] = []
    cursor = None
    while True:
        page = api.call("GET", "/conversations", key, params={"limit": 2, **({"cursor": cursor} if cursor else {})}
                        ).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 4
    wa = api.call("GET", "/conversations", key, params={"channel": "wa-main"}).json()["data"]
    assert {c["id"] for c in wa} == {api.fresh_conv, api.old_conv} and wa[0]["channel"] == "wa-main"
    # assign by email, then by id; complete
    r = api.call("POST", f"/conversations/{api.fresh_conv}/assign", key, json={"email": "A1@acme.test"})
    assert r.status_code == 200, r.text
    assert r.json()["assigned_user_id"] == api.world.a1.user_id and r.json()["status"] == "ASSIGNED"
    assigned = api.call("GET", "/conversations", key, params={"assignee": api.world.a1.user_id}).json()["data"]
    assert [c["id"] for c in assigned] == [api.fresh_conv]
    r = api.call("POST", f"/conversations/{api.fresh_conv}/assign", key, json={"user_id": api.world.a2.user_id})
    assert r.json()["assigned_user_id"] == api.world.a2.user_id
    r = api.call("POST", f"/conversations/{api.fresh_conv}/assign", key, json={"email": "nobody@else.test"})
    assert _problem(r, 422)["errors"][0]["field"] == "email"
    r = api.call("POST", f"/conversations/{api.fresh_conv}/assign", key, json={})
    assert _problem(r, 422)["errors"][0]["field"] == "user_id"
    done = api.call("POST", f"/conversations/{api.fresh_conv}/complete", key).json()
    assert done["status"] == "COMPLETED" and done["assigned_user_id"] is None
    completed = api.call("GET", "/conversations", key, params={"status": "COMPLETED"}).json()["data"]
    assert [c["id"] for c in completed] == [api.fresh_conv]
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert api.call("GET", "/conversations", key, params={"updated_since": future}).json()["data"] == []
    # contacts: search and pages
    found = api.call("GET", "/contacts", key, params={"search": "fion"}).json()["data"]
    assert [c["display_name"] for c in found] == ["Fresh Fiona"]
    first = api.call("GET", "/contacts", key, params={"limit": 2}).json()
    rest = api.call("GET", "/contacts", key, params={"limit": 10, "cursor": first["next_cursor"]}).json()
    assert len(first["data"]) + len(rest["data"]) == 4 and rest["next_cursor"] is None


def test_openapi_and_docs_are_served(api: Api) -> None:
    spec = api.client.get(f"{api.base}/api/openapi.json").json()
    assert {"/v1/messages", "/v1/messages/{message_id}", "/v1/conversations", "/v1/contacts",
            "/v1/conversations/{conversation_id}/messages", "/v1/conversations/{conversation_id}/assign",
            "/v1/conversations/{conversation_id}/complete"} <= set(spec["paths"])
    assert spec["servers"] == [{"url": "/api"}]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    docs = api.client.get(f"{api.base}/api/docs")
    assert docs.status_code == 200 and "/api/openapi.json" in docs.text
    assert api.client.get(f"{api.base}/health").status_code in (200, 503)


def test_key_actions_are_audited(api: Api) -> None:
    api.key()
    with committing(api.world.engine) as u:
        key_id = u.session.execute(select(ApiKey.id)).scalar_one()
        revoke_api_key(u, Actor.system(api.world.org), key_id)
        revoke_api_key(u, Actor.system(api.world.org), key_id)  # twice: one entry
    with UnitOfWork(api.world.engine) as u:
        actions = list(u.session.execute(select(AuditLog.action).where(AuditLog.action.like("api_key.%"))
                                         .order_by(AuditLog.id)).scalars())
        hashes = list(u.session.execute(select(ApiKey.secret_hash)).scalars())
        template = u.session.execute(select(func.count()).select_from(MessageTemplate)).scalar_one()
    assert actions == ["api_key.created", "api_key.revoked"]
    assert len(hashes[0]) == 64 and template == 1


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")


def test_files_go_through_the_outbox_with_the_platforms_limits(api: Api, tmp_path: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from switchboard.settings import get_settings

    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path / "home"))  # where the API keeps the files it queues
    get_settings.cache_clear()
    key = api.key()
    photo = {"file_name": "receipt.png", "content_base64": base64.b64encode(PNG).decode(), "caption": "Your receipt"}
    r = api.call("POST", "/messages", key, json={"conversation_id": api.fresh_conv, "media": photo})
    assert r.status_code == 202, r.text
    assert (r.json()["content_type"], r.json()["text"], r.json()["status"]) == ("image", "Your receipt", "PENDING")
    # a first message to a new Telegram chat can be a file (Telegram has no window)
    doc = {"file_name": "terms.pdf", "mime_type": "application/pdf",
           "content_base64": base64.b64encode(b"%PDF-1.4 terms").decode()}
    r = api.call("POST", "/messages", key, json={"channel": "tg", "to": "888003", "media": doc})
    assert r.status_code == 202 and r.json()["content_type"] == "document", r.text
    with UnitOfWork(api.world.engine) as uow:
        stored = uow.session.execute(select(func.count()).select_from(Message)
                                     .where(Message.content_type.in_(["image", "document"]))).scalar_one()
    assert stored == 2
    # refused with the reason: outside WhatsApp's window, over the platform's size, not base64, two contents
    late = _problem(api.call("POST", "/messages", key, json={"conversation_id": api.old_conv, "media": photo}), 422)
    assert "24 hours" in late["detail"]
    big = {"file_name": "big.png", "content_base64": base64.b64encode(b"\x89PNG" + b"x" * 6 * 1024 * 1024).decode()}
    too_big = _problem(api.call("POST", "/messages", key, json={"conversation_id": api.fresh_conv, "media": big}), 422)
    assert "up to 5.0 MB" in too_big["detail"]
    bad = _problem(api.call("POST", "/messages", key, json={"conversation_id": api.fresh_conv,
                                                              "media": {**photo, "content_base64": "not base64!"}}), 422)
    assert "not base64" in str(bad)
    both = _problem(api.call("POST", "/messages", key, json={"conversation_id": api.fresh_conv, "text": "hi",
                                                               "media": photo}), 422)
    assert "exactly one" in both["detail"]
    get_settings.cache_clear()


def test_messages_sent_with_a_key_are_not_a_persons_replies(api: Api) -> None:
    """No person acts behind a key: its messages are a bot's (never a human response in the metrics),
    like a flow's; an agent's reply from the inbox stays the agent's."""
    r = api.call("POST", "/messages", api.key(), json={"conversation_id": api.fresh_conv, "text": "order shipped"})
    assert r.status_code == 202 and r.json()["author_kind"] == "bot", r.text
    with UnitOfWork(api.world.engine) as uow:
        author = uow.session.execute(select(Message.author_user_id).where(Message.id == r.json()["id"])).scalar()
    assert author is None
