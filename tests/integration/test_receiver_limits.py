"""The receiver's body-size limit over real HTTP (uvicorn on 127.0.0.1), with and without
Content-Length: a chunked body one byte over the limit is refused with 413 and not stored, a body of
exactly the limit is accepted and stored."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, select

from switchboard.db.schema import WebhookEvent
from switchboard.http.receiver import create_app
from switchboard.services.channels import create_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from tests.fakes.server import run_asgi

LIMIT = 8_192
SECRET = "limits-app-secret"


def body_of(size: int) -> bytes:
    """A WhatsApp-shaped JSON body of exactly ``size`` bytes."""
    head = b'{"object":"whatsapp_business_account","entry":[],"padding":"'
    tail = b'"}'
    body = head + b"x" * (size - len(head) - len(tail)) + tail
    assert len(body) == size
    json.loads(body)
    return body


def chunked(body: bytes, size: int = 1_000) -> Iterator[bytes]:
    """A generator: httpx sends it with Transfer-Encoding: chunked and no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


def signed(body: bytes) -> dict[str, str]:
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": sig, "Content-Type": "application/json"}


@pytest.fixture
def webhook_url(engine: Engine) -> Iterator[str]:
    key = get_settings().secret_key_bytes()
    credentials = {"app_secret": SECRET, "access_token": "t", "phone_number_id": "100"}
    with UnitOfWork(engine) as uow:
        ch = create_channel(uow, Actor.system(create_organization(uow, "Limits")), key="wa", provider="whatsapp", name="WA",
                            secret_key=key, external_id="100", credentials=credentials)
        uow.commit()
    with run_asgi(create_app(engine, key, max_body_bytes=LIMIT)) as base:
        yield f"{base}/webhooks/whatsapp/{ch.webhook_key}"


def _stored(engine: Engine) -> list[tuple[str, bytes]]:
    with UnitOfWork(engine) as uow:
        rows = uow.session.execute(select(WebhookEvent.status, WebhookEvent.body).order_by(WebhookEvent.id))
        return [(status, bytes(body)) for status, body in rows]


def _post_chunked(url: str, body: bytes) -> httpx.Response:
    request = httpx.Request("POST", url, content=chunked(body), headers=signed(body))
    assert request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in request.headers
    with httpx.Client(timeout=30) as client:
        return client.send(request)


def test_a_chunked_body_over_the_limit_is_refused_and_not_stored(webhook_url: str, engine: Engine) -> None:
    over = body_of(LIMIT + 1)
    r = _post_chunked(webhook_url, over)
    assert (r.status_code, r.text) == (413, "payload too large")
    much_more = body_of(LIMIT * 50)  # the refusal comes before the rest of the body is read
    r = _post_chunked(webhook_url, much_more)
    assert r.status_code == 413
    assert _stored(engine) == []


def test_a_chunked_body_of_exactly_the_limit_is_accepted(webhook_url: str, engine: Engine) -> None:
    exact = body_of(LIMIT)
    r = _post_chunked(webhook_url, exact)
    assert (r.status_code, r.text) == (200, "ok")
    assert _stored(engine) == [("RECEIVED", exact)]


def test_content_length_at_and_over_the_limit(webhook_url: str, engine: Engine) -> None:
    exact, over = body_of(LIMIT), body_of(LIMIT + 1)
    assert httpx.post(webhook_url, content=over, headers=signed(over)).status_code == 413
    r = httpx.post(webhook_url, content=exact, headers=signed(exact))
    assert (r.status_code, r.request.headers["content-length"]) == (200, str(LIMIT))
    assert _stored(engine) == [("RECEIVED", exact)]
