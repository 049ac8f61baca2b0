"""SMS/MMS through Twilio over real HTTP: the local Twilio fake posts signed form-encoded webhooks to the
product's receiver (as if through a proxy: signed over PUBLIC_BASE_URL, posted to 127.0.0.1), the
webhook worker ingests them into the inbox, the outbox sends through the fake's Messages API, status
callbacks apply forward-only, and MMS media are downloaded by the media flow."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine, select

from connectors.base import (
    SEND,
    WEBHOOK_URL_HEADER,
    AuthenticationError,
    PermanentError,
    RateLimited,
    RetryableError,
    SignatureError,
)
from connectors.registry import get_connector, port, webhook_body_error
from connectors.twilio import TwilioConnector, e164, parse_twilio_webhook
from switchboard.db.schema import Attachment, Message, WebhookEvent
from switchboard.http.receiver import create_app
from switchboard.services.channels import create_channel
from switchboard.services.inbox_views import list_conversations
from switchboard.services.messages import message_views
from switchboard.services.organizations import create_organization
from switchboard.services.outbox import enqueue_bot_reply
from switchboard.settings import get_settings
from switchboard.types import Actor, InboundMessage, OutboundRequest, StatusUpdate
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import process_webhooks_once
from switchboard.workflows.media import download_media_once
from switchboard.workflows.sending import drain_outbox
from tests.fakes.server import run_asgi
from tests.fakes.twilio import FakeTwilio, Forced, sign

PUBLIC = "https://hooks.example.test"  # PUBLIC_BASE_URL: what Twilio is told; a proxy forwards to us
SHOP = "+14155550100"
CUSTOMER = "+14155550123"


@dataclass
class Rig:
    engine: Engine
    twilio: FakeTwilio
    connectors: ConnectorCache
    org: int
    channel_id: int
    local_url: str  # where the "proxy" forwards: the receiver on 127.0.0.1
    public_url: str  # the channel's webhook URL as configured at Twilio

    def ingest(self) -> None:
        stats = process_webhooks_once(self.engine, self.connectors)
        assert stats.errors == 0 and stats.rejected == 0, stats


@pytest.fixture
def rig(engine: Engine) -> Iterator[Rig]:
    key = get_settings().secret_key_bytes()
    twilio = FakeTwilio()
    with run_asgi(twilio.app) as api:
        twilio.base_url = api
        with UnitOfWork(engine) as uow:
            org = create_organization(uow, "SMS shop")
            ch = create_channel(uow, Actor.system(org), key="sms", provider="twilio", name="SMS", secret_key=key,
                                credentials={"account_sid": twilio.account_sid, "auth_token": twilio.auth_token,
                                             "from_number": SHOP, "api_base_url": api})
            uow.commit()
        connectors = ConnectorCache(engine, key, public_base_url=PUBLIC)
        with run_asgi(create_app(engine, key, public_base_url=PUBLIC)) as receiver:
            try:
                yield Rig(engine, twilio, connectors, org, ch.id, f"{receiver}/webhooks/twilio/{ch.webhook_key}",
                          ch.webhook_url(PUBLIC))
            finally:
                connectors.close()


def _stored(engine: Engine) -> list[tuple[str, str | None]]:
    with UnitOfWork(engine) as uow:
        return [(r.status, r.reason) for r in uow.session.execute(
            select(WebhookEvent.status, WebhookEvent.reason).order_by(WebhookEvent.id))]


# --- the signature ----------------------------------------------------------------------------------

def test_the_signature_covers_the_public_url_and_every_parameter() -> None:
    token, url = "tok", "https://hooks.example.test/webhooks/twilio/abc"
    connector = TwilioConnector(account_sid="AC1", auth_token=token, from_number=SHOP)
    params = [("MessageSid", "SM1"), ("From", CUSTOMER), ("Body", "hi & bye"), ("NumMedia", "0")]
    body = urlencode(params).encode()
    good = {"X-Twilio-Signature": sign(token, url, params), WEBHOOK_URL_HEADER: url}
    connector.verify_signature(body, good)  # valid
    cases = {
        "forged": {**good, "X-Twilio-Signature": sign("not-the-token", url, params)},
        "wrong URL": {**good, WEBHOOK_URL_HEADER: "http://127.0.0.1:8000/webhooks/twilio/abc"},
        "missing": {WEBHOOK_URL_HEADER: url},
    }
    for name, headers in cases.items():
        with pytest.raises(SignatureError):
            connector.verify_signature(body, headers)
            pytest.fail(f"{name} signature accepted")
    with pytest.raises(SignatureError, match="does not match"):  # a parameter changed after signing
        connector.verify_signature(body.replace(b"bye", b"BYE"), good)
    with pytest.raises(SignatureError, match="public webhook URL"):  # not called by the receiver
        connector.verify_signature(body, {"X-Twilio-Signature": good["X-Twilio-Signature"]})


def test_the_receiver_refuses_forged_and_wrong_url_signatures(rig: Rig) -> None:
    params = rig.twilio.inbound_params(from_=CUSTOMER, to=SHOP, body="hello")
    forged = rig.twilio.post(rig.local_url, params, signature=sign("guess", rig.public_url, params))
    wrong_url = rig.twilio.post(rig.local_url, params, public_url=rig.local_url)  # signed over the local URL
    good = rig.twilio.post(rig.local_url, params, public_url=rig.public_url)
    assert [forged.status_code, wrong_url.status_code, good.status_code] == [401, 401, 200]
    stored = _stored(rig.engine)
    assert [s for s, _ in stored] == ["REJECTED", "REJECTED", "RECEIVED"]
    assert all("X-Twilio-Signature does not match" in (e or "") for _, e in stored[:2])


def test_bodies_are_checked_in_their_provider_format() -> None:
    assert webhook_body_error("twilio", b"MessageSid=SM1&Body=hi") is None
    assert webhook_body_error("twilio", b"\xff\xfe") is not None
    assert webhook_body_error("whatsapp", b"MessageSid=SM1") == (
        "malformed JSON: Expecting value: line 1 column 1 (char 0)")  # JSON providers still want JSON
    assert webhook_body_error("email", b'{"From": "a@b.c"}') is None


# --- inbound to the inbox ---------------------------------------------------------------------------

def test_an_sms_and_an_mms_reach_one_conversation_in_the_inbox(rig: Rig, tmp_path: Path) -> None:
    sid1, r1 = rig.twilio.inbound(rig.local_url, from_=CUSTOMER, to=SHOP, body="Is my order shipped?",
                                  public_url=rig.public_url)
    png = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50
    sid2, r2 = rig.twilio.inbound(rig.local_url, from_=CUSTOMER, to=SHOP, body="", media=[(png, "image/png")],
                                  public_url=rig.public_url)
    replay = rig.twilio.post(rig.local_url, rig.twilio.inbound_params(from_=CUSTOMER, to=SHOP, body="x"),
                             public_url=rig.public_url)
    assert (r1.status_code, r2.status_code, replay.status_code) == (200, 200, 200)
    rig.ingest()
    rig.ingest()  # nothing twice
    with UnitOfWork(rig.engine) as uow:
        page = list_conversations(uow, Actor.system(rig.org))
        assert len(page.items) == 1
        conv = page.items[0]
        msgs = message_views(uow, Message.conversation_id == conv.id, order=(Message.id,))
    assert conv.unread_count == 3
    assert [(m.provider_message_id, m.body, m.content_type) for m in msgs[:2]] == [
        (sid1, "Is my order shipped?", "text"), (sid2, None, "image")]
    assert msgs[1].attachments[0].mime_type == "image/png"
    # the media flow downloads the MMS through the API (credentials), following Twilio's redirect
    stats = download_media_once(rig.engine, rig.connectors, tmp_path)
    assert stats.stored == 1, stats
    with UnitOfWork(rig.engine) as uow:
        path = uow.session.execute(select(Attachment.local_path)).scalar_one()
    assert Path(str(path)).read_bytes() == png
    assert "authorization" not in rig.twilio.media_requests[0]  # not sent on to the storage host


def test_inbound_numbers_are_e164_and_contacts_keep_them() -> None:
    body = b"MessageSid=SM9&From=%2B1+415-555-0123&To=%2B14155550100&Body=hi&SmsStatus=received"
    [item] = parse_twilio_webhook(body)
    assert isinstance(item, InboundMessage)
    assert (item.contact.provider_contact_id, item.contact.phone) == (CUSTOMER, CUSTOMER)
    assert e164("(415) 555-0123", "US") == CUSTOMER
    with pytest.raises(PermanentError) as info:
        e164("12")
    assert info.value.code == "invalid_number"


# --- outbound and status callbacks ------------------------------------------------------------------

def _reply(rig: Rig, text: str, key: str) -> int:
    with UnitOfWork(rig.engine) as uow:
        conv = list_conversations(uow, Actor.system(rig.org)).items[0]
        mid = enqueue_bot_reply(uow, Actor.system(rig.org), conv.id, text, idempotency_key=key).id
        uow.commit()
    return mid


def _message(rig: Rig, message_id: int) -> tuple[str, str | None, str | None]:
    with UnitOfWork(rig.engine) as uow:
        m = uow.session.get(Message, message_id)
        assert m is not None
        return m.status, m.provider_message_id, m.error_code


def test_a_reply_is_sent_and_its_status_callbacks_only_move_forward(rig: Rig) -> None:
    rig.twilio.inbound(rig.local_url, from_=CUSTOMER, to=SHOP, body="hi", public_url=rig.public_url)
    rig.ingest()
    first, second = _reply(rig, "Shipped today!", "r1"), _reply(rig, "Anything else?", "r2")
    stats = drain_outbox(rig.engine, rig.connectors, seconds=30, idle_seconds=0.5)  # the send rate spaces them
    assert stats.sent == 2, stats
    sent = {s["Body"]: s for s in rig.twilio.sent}
    assert sent["Shipped today!"]["To"] == CUSTOMER and sent["Shipped today!"]["From"] == SHOP
    assert sent["Shipped today!"]["StatusCallback"] == rig.public_url  # Twilio reports to our webhook
    sid1, sid2 = _message(rig, first)[1], _message(rig, second)[1]
    assert sid1 == sent["Shipped today!"]["sid"]

    for sid, status, code in ((sid1, "queued", None), (sid1, "sent", None), (sid1, "delivered", None),
                              (sid1, "sent", None),  # late: ignored, DELIVERED stays
                              (sid2, "sent", None), (sid2, "undelivered", "30003")):
        assert rig.twilio.status(rig.local_url, sid or "", status, error_code=code,
                                 public_url=rig.public_url).status_code == 200
    rig.ingest()
    assert _message(rig, first) == ("DELIVERED", sid1, None)
    assert _message(rig, second) == ("FAILED", sid2, "30003")
    rig.twilio.status(rig.local_url, sid2 or "", "delivered", public_url=rig.public_url)
    rig.ingest()
    assert _message(rig, second)[0] == "FAILED"  # FAILED is final


def test_status_callbacks_map_to_status_updates() -> None:
    items = [parse_twilio_webhook(f"MessageSid=SM1&MessageStatus={s}&ErrorCode=30006".encode())[0]
             for s in ("queued", "sending", "sent", "delivered", "read", "undelivered", "failed")]
    assert [getattr(i, "status", None) for i in items] == [None, None, "SENT", "DELIVERED", "READ", "FAILED", "FAILED"]
    failed = items[-1]
    assert isinstance(failed, StatusUpdate) and failed.error_code == "30006"


def test_send_errors_are_mapped_to_the_connector_errors(rig: Rig) -> None:
    api = rig.twilio.base_url
    creds = {"account_sid": rig.twilio.account_sid, "auth_token": rig.twilio.auth_token, "from_number": SHOP,
             "api_base_url": api}
    request = OutboundRequest(recipient_id=CUSTOMER, body="hello")
    with closing(get_connector("twilio", external_id=None, credentials=creds)) as conn:
        sender = port(conn, SEND)
        assert sender.send(request).provider_message_id.startswith("SM")
        rig.twilio.forced += [Forced(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "3"}),
                              Forced(503, {"code": 20500, "message": "Service unavailable"})]
        with pytest.raises(RateLimited) as limited:
            sender.send(request)
        assert limited.value.retry_after == 3.0
        with pytest.raises(RetryableError):
            sender.send(request)
        with pytest.raises(PermanentError) as invalid:
            sender.send(OutboundRequest(recipient_id="+999", body="x"))  # refused before calling Twilio
        assert invalid.value.code == "invalid_number"
        rig.twilio.forced.append(Forced(400, {"code": 21211, "message": "Invalid 'To' Phone Number"}))
        with pytest.raises(PermanentError) as refused:
            sender.send(request)
        assert refused.value.code == "21211" and not refused.value.retryable
    with closing(get_connector("twilio", external_id=None,
                               credentials={**creds, "auth_token": "wrong"})) as conn:
        with pytest.raises(AuthenticationError) as auth:
            port(conn, SEND).send(request)
        assert auth.value.code == "20003"
    with closing(get_connector("twilio", external_id=None,
                               credentials={**creds, "api_base_url": "http://127.0.0.1:9"})) as conn, \
            pytest.raises(RetryableError):
        port(conn, SEND).send(request)
