"""Email channels over real transports: Postmark-style inbound webhooks through the product's receiver
(basic auth and a URL token), threads into one conversation, HTML and quoted history stripped from the
shown text, attachments stored by the media flow, replies sent to a real SMTP server (aiosmtpd on
127.0.0.1) with the thread's headers, the Postmark API (a local fake), bounces marking a send FAILED."""

from __future__ import annotations

import base64
import email
import json
import socket
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import SEND, AuthenticationError, PermanentError, RetryableError
from connectors.email import html_to_text, latest_reply, parse_email_webhook
from connectors.registry import get_connector, port
from switchboard.db.schema import Attachment, Message, WebhookEvent
from switchboard.http.receiver import create_app
from switchboard.services.channels import create_channel
from switchboard.services.conversations import complete
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
from switchboard.workflows.sending import send_outbox_once
from tests.fakes.server import run_asgi

SHOP = "support@shop.test"
ANNA = "anna@customer.test"
HTML = ("<html><head><style>p {color: red}</style><script>alert('x')</script></head><body>"
        "<p>Hello &amp; <b>thanks</b> for the <a href=\"javascript:alert(1)\">quick</a> answer!</p>"
        "<div>Order <i>#42</i><br>arrived <img src=x onerror=alert(1)>today.</div></body></html>")
QUOTED = ("Thanks, that works!\n\nBest regards,\nAnna\n--\nAnna Smith | Customer Ltd\n\n"
          "On Tue, Dec 1, 2026 at 10:00 AM Support <support@shop.test> wrote:\n> Hello Anna,\n> try restarting.\n")


def mail(message_id: str, *, subject: str = "Where is my order?", text: str = "Where is my order #42?",
         html: str = "", in_reply_to: str = "", references: str = "", sender: str = ANNA,
         attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    headers = [{"Name": "Message-ID", "Value": message_id}]
    if in_reply_to:
        headers.append({"Name": "In-Reply-To", "Value": in_reply_to})
    if references:
        headers.append({"Name": "References", "Value": references})
    return {"FromName": "Anna Smith", "MessageStream": "inbound", "From": sender,
            "FromFull": {"Email": sender, "Name": "Anna Smith"}, "To": SHOP, "Subject": subject,
            "MessageID": f"pm-{message_id.strip('<>')}", "Date": "Wed, 2 Dec 2026 10:00:00 +0000",
            "TextBody": text, "HtmlBody": html, "Headers": headers, "Attachments": attachments or []}


# --- pure parts -------------------------------------------------------------------------------------

def test_html_becomes_safe_plain_text() -> None:
    text = html_to_text(HTML)
    assert text == "Hello & thanks for the quick answer!\nOrder #42\narrived today."
    assert "<" not in text and "alert" not in text and "color" not in text


def test_quoted_history_and_signature_are_stripped_but_kept_in_raw() -> None:
    assert latest_reply(QUOTED) == "Thanks, that works!"
    [item] = parse_email_webhook(json.dumps(mail("<r1@customer.test>", text=QUOTED,
                                                 in_reply_to="<s1@shop.test>")).encode())
    assert isinstance(item, InboundMessage)
    assert item.body == "Thanks, that works!"
    assert item.raw["text"] == QUOTED  # the whole mail stays available
    assert item.reply_to_provider_message_id == "<s1@shop.test>"
    [html_only] = parse_email_webhook(json.dumps(mail("<h1@customer.test>", text="", html=HTML)).encode())
    assert isinstance(html_only, InboundMessage) and html_only.body == html_to_text(HTML)


def test_bounces_and_complaints_are_failures_with_their_reason() -> None:
    bounce = {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce",
              "MessageID": "pm-1", "Description": "The server was unable to deliver your message",
              "Details": "smtp;550 5.1.1 The email account does not exist", "Email": ANNA,
              "BouncedAt": "2026-12-02T10:00:00Z"}
    complaint = {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "MessageID": "pm-2", "Email": ANNA,
                 "BouncedAt": "2026-12-02T10:00:00Z", "Description": "marked as spam"}
    opened = {"RecordType": "Open", "MessageID": "pm-3", "ReceivedAt": "2026-12-02T10:00:00Z"}
    items = [parse_email_webhook(json.dumps(b).encode())[0] for b in (bounce, complaint, opened)]
    assert all(isinstance(i, StatusUpdate) for i in items)
    failed, spam, read = (i for i in items if isinstance(i, StatusUpdate))
    assert (failed.status, failed.error_code) == ("FAILED", "HardBounce")
    assert "550 5.1.1" in (failed.error_message or "") and (spam.status, read.status) == ("FAILED", "READ")


# --- the rig: an email channel on a real SMTP server, behind the receiver -----------------------------

@dataclass
class Smtp:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        self.messages.append(cast(EmailMessage, email.message_from_bytes(envelope.content, policy=default_policy)))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    engine: Engine
    smtp: Smtp
    connectors: ConnectorCache
    org: int
    channel_id: int
    url: str  # the channel's webhook URL on the receiver (no credentials)

    def post(self, body: dict[str, Any], *, auth: tuple[str, str] | None = ("postmark", "inbound-pw"),
             token: str | None = "url-token") -> httpx.Response:
        url = f"{self.url}?token={token}" if token else self.url
        return httpx.post(url, json=body, auth=auth, timeout=10)

    def ingest(self) -> None:
        stats = process_webhooks_once(self.engine, self.connectors)
        assert stats.errors == 0 and stats.rejected == 0, stats


@pytest.fixture
def rig(engine: Engine) -> Iterator[Rig]:
    key = get_settings().secret_key_bytes()
    smtp = Smtp()
    controller = Controller(smtp, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        with UnitOfWork(engine) as uow:
            org = create_organization(uow, "Mail shop")
            ch = create_channel(uow, Actor.system(org), key="mail", provider="email", name="Support mail",
                                secret_key=key, credentials={
                                    "from_address": SHOP, "from_name": "Shop Support", "smtp_host": "127.0.0.1",
                                    "smtp_port": str(controller.port), "smtp_security": "none",
                                    "inbound_username": "postmark", "inbound_password": "inbound-pw",
                                    "inbound_token": "url-token"})
            uow.commit()
        connectors = ConnectorCache(engine, key, public_base_url="https://hooks.example.test")
        with run_asgi(create_app(engine, key, public_base_url="https://hooks.example.test")) as base:
            try:
                yield Rig(engine, smtp, connectors, org, ch.id, f"{base}/webhooks/email/{ch.webhook_key}")
            finally:
                connectors.close()
    finally:
        controller.stop()


def _conversations(rig: Rig) -> list[Any]:
    with UnitOfWork(rig.engine) as uow:
        return list(list_conversations(uow, Actor.system(rig.org)).items)


def _messages(rig: Rig, conversation_id: int) -> list[Any]:
    with UnitOfWork(rig.engine) as uow:
        return message_views(uow, Message.conversation_id == conversation_id, order=(Message.sent_at, Message.id))


def test_the_inbound_webhook_needs_its_basic_auth_and_url_token(rig: Rig) -> None:
    body = mail("<a1@customer.test>")
    answers = [rig.post(body, auth=None).status_code, rig.post(body, auth=("postmark", "guess")).status_code,
               rig.post(body, token=None).status_code, rig.post(body, token="guess").status_code,
               rig.post(body).status_code]
    assert answers == [401, 401, 401, 401, 200]
    with UnitOfWork(rig.engine) as uow:
        rows = uow.session.execute(select(WebhookEvent.status, WebhookEvent.headers).order_by(WebhookEvent.id)).all()
    assert [r.status for r in rows] == ["REJECTED"] * 4 + ["RECEIVED"]
    for r in rows:  # the inbound password and URL token are not kept with the deliveries
        assert "authorization" not in r.headers and "token" not in json.dumps(r.headers)


def test_a_thread_and_later_mails_of_the_sender_share_one_conversation(rig: Rig, tmp_path: Path) -> None:
    pdf = b"%PDF-1.4 invoice"
    first = mail("<a1@customer.test>", html=HTML, text="", attachments=[
        {"Name": "invoice.pdf", "Content": base64.b64encode(pdf).decode(), "ContentType": "application/pdf",
         "ContentLength": len(pdf)}])
    reply = mail("<a2@customer.test>", subject="Re: Where is my order?", text=QUOTED,
                 in_reply_to="<a1@customer.test>", references="<a1@customer.test>")
    assert rig.post(first).status_code == 200 and rig.post(reply).status_code == 200
    rig.ingest()
    [conv] = _conversations(rig)
    msgs = _messages(rig, conv.id)
    assert [(m.provider_message_id, m.body) for m in msgs] == [
        ("<a1@customer.test>", html_to_text(HTML)), ("<a2@customer.test>", "Thanks, that works!")]
    assert msgs[0].attachments[0].file_name == "invoice.pdf"
    assert download_media_once(rig.engine, rig.connectors, tmp_path).stored == 1
    with UnitOfWork(rig.engine) as uow:
        att = uow.session.execute(select(Attachment.local_path, Attachment.data)).one()
    assert Path(str(att.local_path)).read_bytes() == pdf and "content_base64" not in att.data

    # the conversation is completed; a new subject from the same sender reopens it (a new cycle)
    with UnitOfWork(rig.engine) as uow:
        complete(uow, Actor.system(rig.org), conv.id)
        uow.commit()
    assert rig.post(mail("<b1@customer.test>", subject="A new question")).status_code == 200
    rig.ingest()
    [again] = _conversations(rig)
    assert (again.id, again.status, again.cycle_number) == (conv.id, "PENDING", 2)


def test_a_colleague_answering_the_thread_joins_it_and_their_own_mail_does_not(rig: Rig) -> None:
    bob = "bob@customer.test"
    assert rig.post(mail("<a1@customer.test>")).status_code == 200
    rig.ingest()
    rig.post(mail("<c1@customer.test>", sender=bob, subject="Re: Where is my order?", text="Anna is away: any news?",
                  in_reply_to="<a1@customer.test>", references="<a0@elsewhere.test> <a1@customer.test>"))
    rig.post(mail("<c2@customer.test>", sender=bob, subject="Another matter", text="A question of my own"))
    rig.ingest()
    threads = {tuple(m.provider_message_id for m in _messages(rig, c.id)) for c in _conversations(rig)}
    assert threads == {("<a1@customer.test>", "<c1@customer.test>"), ("<c2@customer.test>",)}


def test_a_reply_goes_out_by_smtp_in_the_thread_and_a_bounce_fails_it(rig: Rig) -> None:
    rig.post(mail("<a1@customer.test>", references="<x0@customer.test>"))
    rig.ingest()
    [conv] = _conversations(rig)
    with UnitOfWork(rig.engine) as uow:
        mid = enqueue_bot_reply(uow, Actor.system(rig.org), conv.id, "It ships today.", idempotency_key="k1").id
        uow.commit()
    stats = send_outbox_once(rig.engine, rig.connectors)
    assert stats.sent == 1, stats
    [sent] = rig.smtp.messages
    assert rig.smtp.envelopes == [(SHOP, [ANNA])]
    assert sent["Subject"] == "Re: Where is my order?"
    assert sent["In-Reply-To"] == "<a1@customer.test>"
    assert sent["References"] == "<x0@customer.test> <a1@customer.test>"
    plain = sent.get_body(("plain",))
    assert plain is not None and plain.get_content().strip() == "It ships today."
    with UnitOfWork(rig.engine) as uow:
        message = uow.session.get(Message, mid)
        assert message is not None
        pmid = message.provider_message_id
    assert pmid == sent["Message-ID"] and str(pmid).endswith("@shop.test>")

    bounce = {"RecordType": "Bounce", "Type": "HardBounce", "Name": "Hard bounce", "MessageID": pmid,
              "Description": "Unknown user", "Details": "smtp;550 5.1.1 no such user", "Email": ANNA,
              "BouncedAt": "2026-12-02T10:05:00Z"}
    assert rig.post(bounce).status_code == 200
    rig.ingest()
    [out] = [m for m in _messages(rig, conv.id) if m.direction == "OUTBOUND"]
    assert (out.status, out.error_code) == ("FAILED", "HardBounce")
    assert "550 5.1.1 no such user" in (out.error_message or "")


# --- the Postmark API --------------------------------------------------------------------------------

def test_postmark_sends_when_its_token_is_configured() -> None:
    calls: list[dict[str, Any]] = []

    async def send(request: Request) -> Response:
        if request.headers.get("x-postmark-server-token") != "pm-token":
            return JSONResponse({"ErrorCode": 10, "Message": "Bad or missing Server API token."}, status_code=401)
        body = await request.json()
        if "@" not in body["To"]:
            return JSONResponse({"ErrorCode": 300, "Message": "Invalid 'To' address"}, status_code=422)
        calls.append(body)
        return JSONResponse({"To": body["To"], "MessageID": "0a129aee-e1cd-480d-b08d-4f48548ff48d",
                             "ErrorCode": 0, "Message": "OK"})

    app = Starlette(routes=[Route("/email", send, methods=["POST"])])
    with run_asgi(app) as api:
        creds = {"from_address": SHOP, "postmark_server_token": "pm-token", "postmark_api_url": api}
        with closing(get_connector("email", external_id=None, credentials=creds)) as conn:
            result = port(conn, SEND).send(OutboundRequest(recipient_id=ANNA, body="Hello", idempotency_key="k"))
            with pytest.raises(PermanentError):
                port(conn, SEND).send(OutboundRequest(recipient_id="not an address", body="Hello"))
        with closing(get_connector("email", external_id=None, credentials={**creds, "postmark_server_token": "x"})
                     ) as conn, pytest.raises(AuthenticationError):
            port(conn, SEND).send(OutboundRequest(recipient_id=ANNA, body="Hello"))
    assert result.provider_message_id == "0a129aee-e1cd-480d-b08d-4f48548ff48d"
    [call] = calls
    assert (call["To"], call["TextBody"].strip(), call["MessageStream"]) == (ANNA, "Hello", "outbound")
    assert [h["Name"] for h in call["Headers"]] == ["Message-ID"]


class Picky:
    """An SMTP server that refuses some recipients: permanently (550) or for now (451)."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 OK"


def test_smtp_refusals_are_permanent_or_retryable_as_the_server_says() -> None:
    controller = Controller(Picky(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        creds = {"from_address": SHOP, "smtp_host": "127.0.0.1", "smtp_port": controller.port, "smtp_security": "none"}
        with closing(get_connector("email", external_id=None, credentials=creds)) as conn:
            sender = port(conn, SEND)
            ok = sender.send(OutboundRequest(recipient_id=ANNA, body="hi", idempotency_key="k1"))
            again = sender.send(OutboundRequest(recipient_id=ANNA, body="hi", idempotency_key="k1"))
            assert ok.provider_message_id == again.provider_message_id  # a retry repeats the Message-ID
            with pytest.raises(PermanentError) as gone:
                sender.send(OutboundRequest(recipient_id="gone@customer.test", body="hi"))
            assert gone.value.code == "recipient_refused" and "550" in gone.value.message
            with pytest.raises(RetryableError):
                sender.send(OutboundRequest(recipient_id="busy@customer.test", body="hi"))
        with closing(get_connector("email", external_id=None, credentials={**creds, "smtp_security": "starttls"})
                     ) as conn, pytest.raises(PermanentError) as tls:
            port(conn, SEND).send(OutboundRequest(recipient_id=ANNA, body="hi"))
        assert tls.value.code == "config"
    finally:
        controller.stop()
