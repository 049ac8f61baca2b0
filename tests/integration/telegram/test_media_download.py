"""Telegram media end to end on real PostgreSQL: fake Telegram -> sync (ingest) -> download-media run ->
content-addressed files the inbox shows; refusals, FloodWait and a logged-out session recorded, no crash."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from streamlit.testing.v1 import AppTest

from app.text import plain
from connectors.telegram.fake import FakeTelegramGateway, FakeTelegramWorld
from connectors.telegram.gateway import TelegramGateway, TgMedia
from connectors.telegram.login import start_login, submit_code
from switchboard.auth.users import create_user
from switchboard.db.schema import Attachment, Channel, Conversation, Message
from switchboard.policy import actor_for_user
from switchboard.services.channel_lifecycle import resume_channel
from switchboard.services.channels import (
    create_channel,
    get_channel,
    grant_channel_permission,
    set_channel_credentials,
)
from switchboard.services.media import attachment_file
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.media import MediaStats, download_media_once
from switchboard.workflows.telegram import sync_telegram_channel
from tests.helpers import login_apptest

PHONE = "+15550003333"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 200 + b"\xff\xd9"
PDF = b"%PDF-1.7\n" + b"invoice " * 500 + b"\n%%EOF"
LIMIT = 100_000  # bytes: the run's max_bytes in these tests


def _key() -> bytes:
    return get_settings().secret_key_bytes()


@pytest.fixture
def world() -> FakeTelegramWorld:
    w = FakeTelegramWorld()
    w.add_account(PHONE, login_code="24680")
    return w


def factory(world: FakeTelegramWorld) -> Any:
    def make(creds: Mapping[str, Any]) -> TelegramGateway:
        return FakeTelegramGateway(world, str(creds["session"]))

    return make


def connected(engine: Engine, world: FakeTelegramWorld) -> dict[str, Any]:
    gw = FakeTelegramGateway(world)
    state = submit_code(gw, start_login(gw, PHONE), "24680")
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Parcels")
        ch = create_channel(uow, Actor.system(org), key="tg", provider="telegram", name="Telegram", secret_key=_key())
        set_channel_credentials(uow, Actor.system(org), ch.id, _key(), {"api_id": 1, "api_hash": "x", "phone": PHONE,
                                                     "session": state.session})
        agent = create_user(uow, org, email="tg@parcels.test", name="Tia", role="agent", secret_key=_key(),
                            password="long enough password")
        grant_channel_permission(uow, Actor.system(org), user_id=agent.user_id, channel_id=ch.id, can_view=True)
        uow.commit()
    return {"channel_id": ch.id, "agent": agent.user_id, "session": state.session}


def run(engine: Engine, world: FakeTelegramWorld, media_dir: Path) -> MediaStats:
    connectors = ConnectorCache(engine, _key(), telegram_gateway=factory(world))
    try:
        return download_media_once(engine, connectors, media_dir, max_bytes=LIMIT)
    finally:
        connectors.close()


def attachments(engine: Engine) -> dict[str, Attachment]:
    """By the message's key (``<chat>:<id>``)."""
    with UnitOfWork(engine) as uow:
        rows = uow.session.execute(
            select(Message.provider_message_id, Attachment).join(Message, Message.id == Attachment.message_id)
        ).all()
        uow.session.expunge_all()
    return {str(key): att for key, att in rows}


def downloads(world: FakeTelegramWorld) -> int:
    return sum(1 for name, _ in world.calls if name == "download_media")


def test_photo_and_document_are_stored_once_and_refusals_are_kept(engine: Engine, world: FakeTelegramWorld,
                                                                   tmp_path: Path) -> None:
    setup = connected(engine, world)
    ada = world.add_private_chat(PHONE, "Ada", username="ada")
    photo = world.receive_media(PHONE, ada, "image", JPEG, caption="the parcel arrived like this", notify=False)
    doc = world.receive_media(PHONE, ada, "document", PDF, mime_type="application/pdf", file_name="invoice.pdf",
                              notify=False)
    huge = world.receive_media(PHONE, ada, "video", b"\x00" * (LIMIT + 1), mime_type="video/mp4", notify=False)
    exe = world.receive_media(PHONE, ada, "document", b"MZ", mime_type="application/x-msdownload",
                              file_name="setup.exe", notify=False)
    unknown = world.receive(PHONE, ada, None, media=TgMedia("image", "image/jpeg", None, 10, "31337"), notify=False)
    world.receive(PHONE, ada, "plain text", notify=False)

    sync = sync_telegram_channel(engine, setup["channel_id"], factory(world), secret_key=_key())
    assert sync.messages_created == 6
    media_dir = tmp_path / "media"
    stats = run(engine, world, media_dir)
    assert (stats.stored, stats.refused, stats.retrying, stats.deferred) == (2, 3, 0, 0)

    atts = attachments(engine)
    got = atts[photo.key]
    assert got.local_path and Path(got.local_path).read_bytes() == JPEG
    assert got.sha256 == hashlib.sha256(JPEG).hexdigest() and got.size_bytes == len(JPEG)
    assert got.mime_type == "image/jpeg" and got.kind == "image"
    assert Path(got.local_path) == media_dir / str(setup["channel_id"]) / got.sha256[:2] / f"{got.sha256}.jpg"
    pdf = atts[doc.key]
    assert pdf.local_path and Path(pdf.local_path).read_bytes() == PDF and pdf.file_name == "invoice.pdf"
    assert pdf.mime_type == "application/pdf" and Path(pdf.local_path).suffix == ".pdf"

    refused = {key: (atts[key].data["download_error_code"], atts[key].data["download_error"])
               for key in (huge.key, exe.key, unknown.key)}
    assert refused[huge.key][0] == "media_too_large" and f"limit of {LIMIT}" in refused[huge.key][1]
    assert refused[exe.key][0] == "media_type_not_allowed" and "application/x-msdownload" in refused[exe.key][1]
    assert refused[unknown.key][0] == "MEDIA_EXPIRED" and "expired" in refused[unknown.key][1]
    assert all(atts[k].local_path is None for k in refused)
    assert sorted(p.name for p in media_dir.rglob("*") if p.is_file()) == sorted(
        [f"{got.sha256}.jpg", f"{pdf.sha256}.pdf"])  # nothing left of the refused ones

    with UnitOfWork(engine) as uow:  # what the inbox serves, with its access check
        stored = attachment_file(uow, actor_for_user(uow, setup["agent"]), got.id)
    assert Path(stored.path).read_bytes() == JPEG and stored.mime_type == "image/jpeg"

    # idempotent: a second run finds nothing to do and asks Telegram for nothing
    calls = downloads(world)
    assert run(engine, world, media_dir) == MediaStats()
    assert downloads(world) == calls
    # the same bytes received again land on the same file
    again = world.receive_media(PHONE, ada, "image", JPEG, notify=False)
    sync_telegram_channel(engine, setup["channel_id"], factory(world), secret_key=_key())
    assert run(engine, world, media_dir).stored == 1
    assert attachments(engine)[again.key].local_path == got.local_path


def test_flood_wait_defers_the_channel_without_spending_tries(engine: Engine, world: FakeTelegramWorld,
                                                              tmp_path: Path) -> None:
    setup = connected(engine, world)
    ada = world.add_private_chat(PHONE, "Ada")
    msgs = [world.receive_media(PHONE, ada, "image", JPEG + bytes([i]), notify=False) for i in range(3)]
    sync_telegram_channel(engine, setup["channel_id"], factory(world), secret_key=_key())
    world.inject_flood_wait("download_media", 300)
    before = datetime.now(UTC)

    stats = run(engine, world, tmp_path)
    assert (stats.stored, stats.deferred) == (0, 3)
    assert downloads(world) == 1  # the first FloodWait stops the channel for this run
    for m in msgs:
        data = attachments(engine)[m.key].data
        retry_at = datetime.fromisoformat(data["download_retry_at"])
        assert before + timedelta(seconds=299) < retry_at < datetime.now(UTC) + timedelta(seconds=301)
        assert "download_tries" not in data and "download_error_code" not in data
    assert "FloodWait" in attachments(engine)[msgs[0].key].data["download_error"]

    assert run(engine, world, tmp_path) == MediaStats()  # still waiting: Telegram is not asked again
    assert downloads(world) == 1

    with UnitOfWork(engine) as uow:  # ... 300 s later
        for att in attachments(engine).values():
            past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
            uow.session.execute(update(Attachment).where(Attachment.id == att.id)
                                .values(data={**att.data, "download_retry_at": past}))
        uow.commit()
    assert run(engine, world, tmp_path).stored == 3
    assert all("download_retry_at" not in a.data and a.local_path for a in attachments(engine).values())


def test_logged_out_session_is_recorded_on_the_channel_and_the_media_waits(engine: Engine, world: FakeTelegramWorld,
                                                                          tmp_path: Path) -> None:
    setup = connected(engine, world)
    ada = world.add_private_chat(PHONE, "Ada")
    msg = world.receive_media(PHONE, ada, "image", JPEG, notify=False)
    sync_telegram_channel(engine, setup["channel_id"], factory(world), secret_key=_key())
    auth_key = setup["session"].removeprefix("fake:")
    world.sessions[auth_key] = None  # terminated from the Telegram app (Devices)

    stats = run(engine, world, tmp_path)
    assert (stats.stored, stats.refused, stats.deferred) == (0, 0, 1)
    with engine.connect() as con:
        err = con.execute(select(Channel.last_error).where(Channel.id == setup["channel_id"])).scalar_one()
    assert err is not None and "media download" in err and "connect the account again" in err
    assert attachments(engine)[msg.key].data == {}  # untouched: not the media's fault

    world.sessions[auth_key] = PHONE  # reconnected
    assert run(engine, world, tmp_path).stored == 0  # the channel is in error: its media wait for it
    with UnitOfWork(engine) as uow:
        assert get_channel(uow, setup["channel_id"]).status == "error"
        resume_channel(uow, Actor.system(get_channel(uow, setup["channel_id"]).organization_id), setup["channel_id"])
        uow.commit()
    assert run(engine, world, tmp_path).stored == 1


@pytest.mark.usefixtures("app_env")
def test_inbox_shows_the_telegram_photo_and_the_refusal(engine: Engine, world: FakeTelegramWorld,
                                                        tmp_path: Path) -> None:
    import io

    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(picture, format="JPEG")
    setup = connected(engine, world)
    ada = world.add_private_chat(PHONE, "Ada")
    world.receive_media(PHONE, ada, "image", picture.getvalue(), caption="broken box", notify=False)
    world.receive_media(PHONE, ada, "image", b"not a picture at all", caption="odd one", notify=False)
    world.receive_media(PHONE, ada, "document", PDF, mime_type="application/pdf", file_name="invoice.pdf",
                        notify=False)
    world.receive_media(PHONE, ada, "video", b"\x00" * (LIMIT + 1), mime_type="video/mp4", notify=False)
    sync_telegram_channel(engine, setup["channel_id"], factory(world), secret_key=_key())
    assert run(engine, world, tmp_path).stored == 3
    with UnitOfWork(engine) as uow:
        conversation_id = uow.session.execute(select(Conversation.id)).scalar_one()

    def inbox() -> None:
        from app.views import inbox

        inbox.page()

    at = login_apptest(AppTest.from_function(inbox, default_timeout=30), engine, setup["agent"])
    at.session_state["selected_conversation"] = conversation_id
    at.run()
    assert not at.exception, at.exception
    texts = "\n".join(str(t.value) for t in at.text)
    assert "broken box" in texts
    assert "not downloaded: [media_too_large]" in texts and "downloading" not in texts
    assert len(at.get("image")) == 1  # the photo itself; the undecodable one is offered as a file only
    assert "(no preview: the file is not a readable image)" in [c.value for c in at.caption]
    labels = [str(b.proto.label) for b in at.get("download_button")]
    # labels are Markdown: customer file names are escaped (app/text.plain), so nothing in them renders
    assert labels.count(plain("📎 image: image/jpeg")) == 2 and plain("📎 document: invoice.pdf") in labels
