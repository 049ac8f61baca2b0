"""Agents' attachments and the read/typing signals, from the services to the platforms over real HTTP
(the sandbox for WhatsApp, the Graph fake for Messenger) and to the Telegram fake world."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connectors.sandbox import SandboxConfig, create_app
from connectors.telegram.fake import FakeTelegramGateway, FakeTelegramWorld
from connectors.telegram.gateway import PeerRef, TelegramGateway
from connectors.telegram.login import start_login, submit_code
from connectors.whatsapp import WhatsAppConnector
from switchboard.db.schema import Attachment, Message, PlatformSignal
from switchboard.errors import InvalidInput, PermissionDenied
from switchboard.services.attachments import enqueue_attachment
from switchboard.services.channels import create_channel, grant_channel_permission, set_channel_credentials
from switchboard.services.conversations import accept
from switchboard.services.platform_signals import (
    queue_read_mark,
    queue_typing,
    set_read_receipts,
    signals_overview,
)
from switchboard.types import Actor
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.sending import OutboxStats, send_outbox_once
from switchboard.workflows.signals import send_signals_once
from tests.fakes.graph import FakeGraph, Forced
from tests.fakes.receiver import WebhookSink
from tests.fakes.server import run_asgi

from .conftest import KEY, World, at

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"x" * 200
PHONE_ID = "1234567890"
TG_PHONE = "+15550001111"


@dataclass
class Rig:
    world: World
    sandbox: httpx.Client  # the sandbox's control API
    graph: FakeGraph
    tg_world: FakeTelegramWorld
    connectors: ConnectorCache
    wa: int  # a sandbox (WhatsApp) channel
    fb: int  # Messenger
    tg: int  # Telegram
    media: Path


def _tg_factory(tg_world: FakeTelegramWorld) -> Any:
    def make(creds: Mapping[str, Any]) -> TelegramGateway:
        return FakeTelegramGateway(tg_world, str(creds["session"]))

    return make


@pytest.fixture
def rig(world: World, tmp_path: Path) -> Iterator[Rig]:
    receiver_side = WhatsAppConnector(phone_number_id=PHONE_ID, access_token="tok", app_secret="s", provider="sandbox")
    sink = WebhookSink(receiver_side)
    graph = FakeGraph(token="tok", account_id="page-1")
    tg_world = FakeTelegramWorld()
    tg_world.add_account(TG_PHONE, login_code="24680")
    gw = FakeTelegramGateway(tg_world)
    session = submit_code(gw, start_login(gw, TG_PHONE), "24680").session
    with run_asgi(sink.app) as sink_url, run_asgi(graph.app) as graph_url, run_asgi(create_app(SandboxConfig(
            phone_number_id=PHONE_ID, access_token="tok", app_secret="s", webhook_url=f"{sink_url}/hook",
            enforce_window=False,  # the customers wrote through the test, not the sandbox
            speed=500.0))) as sandbox_url:
        graph.base_url = graph_url
        system = Actor.system(world.org)
        with world.uow() as u:
            wa = create_channel(u, system, key="sandbox", provider="sandbox", name="Sandbox", secret_key=KEY,
                                external_id=PHONE_ID, credentials={"access_token": "tok", "app_secret": "s",
                                                                   "api_base_url": sandbox_url}).id
            fb = create_channel(u, system, key="fb", provider="messenger", name="Messenger", secret_key=KEY,
                                external_id="page-1", credentials={"page_access_token": "tok", "app_secret": "s",
                                                                   "api_base_url": graph_url}).id
            set_channel_credentials(u, system, world.tg, KEY, {"api_id": 1, "api_hash": "x", "phone": TG_PHONE,
                                                              "session": session})
            for channel in (wa, fb, world.tg):
                grant_channel_permission(u, system, user_id=world.a1.user_id, channel_id=channel, can_view=True,
                                         can_send=True)
        connectors = ConnectorCache(world.engine, KEY, telegram_gateway=_tg_factory(tg_world))
        try:
            with httpx.Client(base_url=sandbox_url, timeout=10) as control:
                yield Rig(world, control, graph, tg_world, connectors, wa, fb, world.tg, tmp_path / "media")
        finally:
            connectors.close()
    receiver_side.close()


def _accepted(rig: Rig, channel: int, contact: str, pmid: str, name: str | None = None) -> int:
    rig.world.ingest(channel, contact, pmid, 0, name=name)
    conv = rig.world.conversation(channel, contact)
    with rig.world.uow() as u:
        accept(u, rig.world.a1, conv, now=at(1))
    return conv


def _attach(rig: Rig, conv: int, file_name: str, mime: str | None, data: bytes, *, key: str,
            caption: str | None = None, minutes: float = 2, actor: Actor | None = None) -> int:
    with rig.world.uow() as u:
        return enqueue_attachment(u, actor or rig.world.a1, conv, file_name=file_name, mime_type=mime, data=data,
                                  caption=caption, idempotency_key=key, now=at(minutes), media_dir=rig.media).id


def _messages(rig: Rig, conv: int) -> list[Message]:
    with rig.world.uow() as u:
        rows = list(u.session.execute(select(Message).where(Message.conversation_id == conv,
                                                            Message.direction == "OUTBOUND")
                                      .order_by(Message.id)).scalars())
        u.session.expunge_all()
        return rows


def _send_all(rig: Rig, now: datetime) -> OutboxStats:
    """Send everything due, run after run one second apart, as the flow does (the channel's send rate
    spaces sends, so a second message in the same run waits for its slot)."""
    total = OutboxStats()
    for i in range(5):
        total.add(send_outbox_once(rig.world.engine, rig.connectors, now=now + timedelta(seconds=i)))
    return total


def test_limits_window_and_idempotency_at_enqueue(rig: Rig) -> None:
    conv = _accepted(rig, rig.wa, "4915550001", "wamid.in1")
    with pytest.raises(InvalidInput, match=r"big\.png is 6\.0 MB; WhatsApp sends images \(JPEG or PNG\) up to 5\.0 MB"):
        _attach(rig, conv, "big.png", "image/png", b"x" * (6 * 1024 * 1024), key="a0")
    with pytest.raises(InvalidInput, match=r"WhatsApp cannot send anim\.gif \(image/gif\)"):
        _attach(rig, conv, "anim.gif", None, b"GIF89a", key="a0")
    with pytest.raises(InvalidInput, match="24"):  # the messaging window's own sentence
        _attach(rig, conv, "late.png", "image/png", PNG, key="a0", minutes=25 * 60)
    with pytest.raises(PermissionDenied):
        _attach(rig, conv, "photo.png", "image/png", PNG, key="a0", actor=rig.world.a2)
    first = _attach(rig, conv, "photo.png", "image/png", PNG, key="a1", caption="Your receipt")
    assert _attach(rig, conv, "photo.png", "image/png", PNG, key="a1", caption="Your receipt") == first
    (msg,) = _messages(rig, conv)
    assert (msg.content_type, msg.body, msg.status) == ("image", "Your receipt", "PENDING")
    with rig.world.uow() as u:
        (att,) = u.session.execute(select(Attachment).where(Attachment.message_id == first)).scalars()
        assert (att.kind, att.mime_type, att.file_name, att.size_bytes) == ("image", "image/png", "photo.png", len(PNG))
        assert Path(att.local_path or "").read_bytes() == PNG
        assert Path(att.local_path or "").is_relative_to(rig.media / str(rig.wa))


def test_whatsapp_attachment_is_uploaded_and_sent(rig: Rig) -> None:
    conv = _accepted(rig, rig.wa, "4915550002", "wamid.in2")
    image = _attach(rig, conv, "photo.png", "image/png", PNG, key="w1", caption="Look")
    doc = _attach(rig, conv, "terms.pdf", "application/pdf", PDF, key="w2")
    stats = _send_all(rig, at(3))
    assert (stats.sent, stats.failed, stats.errors) == (2, 0, [])
    state = rig.sandbox.get("/_sandbox/state").json()
    assert [(u["mime_type"], u["size"]) for u in state["uploads"]] == [("image/png", len(PNG)),
                                                                       ("application/pdf", len(PDF))]
    sent = rig.sandbox.get("/_sandbox/sent").json()["messages"]
    assert [m["type"] for m in sent] == ["image", "document"]
    assert sent[0]["payload"]["image"] == {"id": state["uploads"][0]["id"], "caption": "Look"}
    assert sent[1]["payload"]["document"] == {"id": state["uploads"][1]["id"], "filename": "terms.pdf"}
    assert [m.status for m in _messages(rig, conv)] == ["SENT", "SENT"]
    assert {m.id for m in _messages(rig, conv)} == {image, doc}


def test_messenger_uploads_the_file_and_sends_the_caption_after_it(rig: Rig) -> None:
    conv = _accepted(rig, rig.fb, "psid-1", "m_in1")
    _attach(rig, conv, "terms.pdf", "application/pdf", PDF, key="f1", caption="Here are the terms")
    msgs = _messages(rig, conv)
    assert [(m.content_type, m.body) for m in msgs] == [("document", None), ("text", "Here are the terms")]
    stats = _send_all(rig, at(3))
    assert (stats.sent, stats.errors) == (2, [])
    upload, file_msg, text_msg = rig.graph.requests
    assert upload["path"].endswith("/page-1/message_attachments") and upload["size"] == len(PDF)
    assert upload["message"] == {"attachment": {"type": "file", "payload": {"is_reusable": True}}}
    assert upload["platform"] is None  # Messenger; Instagram uploads say platform=instagram
    attachment_id = next(iter(rig.graph.uploads))
    assert file_msg["json"]["message"]["attachment"] == {"type": "file", "payload": {"attachment_id": attachment_id}}
    assert text_msg["json"]["message"]["text"] == "Here are the terms"


def _tg_chat(rig: Rig) -> tuple[PeerRef, int]:
    peer = rig.tg_world.add_private_chat(TG_PHONE, "Tess")
    conv = _accepted(rig, rig.tg, str(peer.marked_id), f"{peer.marked_id}:7", name="Tess")
    return peer, conv


def test_telegram_sends_the_file_and_reads_and_types(rig: Rig) -> None:
    w = rig.world
    peer, conv = _tg_chat(rig)
    _attach(rig, conv, "photo.png", "image/png", PNG, key="t1", caption="From us")
    assert send_outbox_once(w.engine, rig.connectors, now=at(3)).sent == 1
    assert [c[0] for c in rig.tg_world.calls if c[0] == "send_file"] == ["send_file"]
    with w.uow() as u:
        assert queue_read_mark(u, w.a1, conv, now=at(3))
        assert queue_typing(u, w.a1, conv, now=at(3))
    assert send_signals_once(w.engine, rig.connectors, now=at(3)).sent == 2
    assert rig.tg_world.read_acks == [(TG_PHONE, peer.marked_id, 7)]
    assert rig.tg_world.typing == [(TG_PHONE, peer.marked_id)]


def test_read_marks_and_typing_are_queued_once_and_sent_over_http(rig: Rig) -> None:
    w = rig.world
    conv = _accepted(rig, rig.wa, "4915550003", "wamid.in3")
    with w.uow() as u:
        grant_channel_permission(u, Actor.system(w.org), user_id=w.viewer.user_id, channel_id=rig.wa,
                                 can_view=True, can_send=False)
    with w.uow() as u:
        assert not queue_read_mark(u, w.manager, conv, now=at(2))  # only the assignee's reading counts
        assert queue_read_mark(u, w.a1, conv, now=at(2))
        assert not queue_read_mark(u, w.a1, conv, now=at(2))  # once per customer message
        assert queue_typing(u, w.a1, conv, now=at(2))
        assert not queue_typing(u, w.a1, conv, now=at(2) + timedelta(seconds=5))  # not again within 20 s
        assert not queue_typing(u, w.viewer, conv, now=at(3))  # may not reply: no typing either
    stats = send_signals_once(w.engine, rig.connectors, now=at(2) + timedelta(seconds=1))
    assert (stats.sent, stats.failed) == (2, 0)
    state = rig.sandbox.get("/_sandbox/state").json()
    assert state["marked_read"] == ["wamid.in3", "wamid.in3"] and state["typing"] == ["wamid.in3"]

    w.ingest(rig.wa, "4915550003", "wamid.in4", 3)  # the customer writes again: a new read mark
    with w.uow() as u:
        assert queue_read_mark(u, w.a1, conv, now=at(4))
        assert queue_typing(u, w.a1, conv, now=at(4))
    # the typing indicator waited too long (the worker was down): dropped, not shown late
    stats = send_signals_once(w.engine, rig.connectors, now=at(4) + timedelta(seconds=30))
    assert (stats.sent, stats.failed) == (1, 0)
    with w.uow() as u:
        expired = u.session.execute(select(PlatformSignal.status, PlatformSignal.error)
                                    .where(PlatformSignal.kind == "typing").order_by(PlatformSignal.id)).all()
        assert [tuple(e) for e in expired] == [("SENT", None), ("FAILED", "expired before it could be sent")]

    with w.uow() as u:  # read receipts off for the channel: nothing is queued
        set_read_receipts(u, w.admin, rig.wa, enabled=False)
    w.ingest(rig.wa, "4915550003", "wamid.in5", 5)
    with w.uow() as u:
        assert not queue_read_mark(u, w.a1, conv, now=at(6))
        assert not queue_typing(u, w.a1, conv, now=at(6))


def test_a_platform_refusal_is_recorded_not_raised(rig: Rig) -> None:
    w = rig.world
    conv = _accepted(rig, rig.fb, "psid-2", "m_in2")
    rig.graph.forced.append(Forced(400, {"error": {"message": "(#100) No matching user found", "code": 100}}))
    with w.uow() as u:
        assert queue_read_mark(u, w.a1, conv, now=at(2))
    stats = send_signals_once(w.engine, rig.connectors, now=at(2))
    assert (stats.sent, stats.failed) == (0, 1)
    assert rig.graph.requests[-1]["json"] == {"recipient": {"id": "psid-2"}, "sender_action": "mark_seen"}
    with w.uow() as u:
        overview = {c.key: c for c in signals_overview(u, w.admin, now=at(3))}
    assert overview["fb"].failed_last_day == 1 and "No matching user" in (overview["fb"].last_error or "")
    assert overview["sandbox"].send_read_receipts
    with w.uow() as u:  # the next one goes through: typing on Messenger is a sender action
        assert queue_typing(u, w.a1, conv, now=at(4))
    assert send_signals_once(w.engine, rig.connectors, now=at(4)).sent == 1
    assert rig.graph.requests[-1]["json"] == {"recipient": {"id": "psid-2"}, "sender_action": "typing_on"}


def test_finished_signals_are_purged_by_the_maintenance_run(rig: Rig) -> None:
    from datetime import timedelta as td

    from switchboard.workflows.maintenance import maintain_once

    w = rig.world
    conv = _accepted(rig, rig.wa, "4915550009", "wamid.in9")
    with w.uow() as u:
        assert queue_read_mark(u, w.a1, conv, now=at(2))
        assert queue_typing(u, w.a1, conv, now=at(2))
    assert send_signals_once(w.engine, rig.connectors, now=at(2)).sent == 2
    with w.uow() as u:
        assert queue_typing(u, w.a1, conv, now=at(2) + td(days=2))  # still pending: kept
    assert maintain_once(w.engine, now=at(2) + td(days=2))["signals_purged"] == 1  # the old typing one
    assert maintain_once(w.engine, now=at(2) + td(days=31))["signals_purged"] == 1  # the read mark
    with w.uow() as u:
        left = u.session.execute(select(PlatformSignal.kind, PlatformSignal.status)).all()
    assert [tuple(r) for r in left] == [("typing", "PENDING")]


def test_instagram_uploads_say_instagram(rig: Rig, tmp_path: Path) -> None:
    from contextlib import closing

    from connectors.base import SEND
    from connectors.registry import get_connector, port
    from switchboard.types import AttachmentRef, OutboundRequest

    photo = tmp_path / "p.png"
    photo.write_bytes(PNG)
    with closing(get_connector("instagram", external_id="page-1", credentials={
            "page_access_token": "tok", "app_secret": "s", "page_id": "page-1",
            "api_base_url": rig.graph.base_url})) as ig:
        port(ig, SEND).send(OutboundRequest(recipient_id="igsid-1", attachments=(AttachmentRef(
            "image", "image/png", data={"path": str(photo)}),)))
    upload, sent = rig.graph.requests
    assert upload["platform"] == "instagram" and upload["path"].endswith("/page-1/message_attachments")
    assert sent["json"]["message"]["attachment"]["type"] == "image"
