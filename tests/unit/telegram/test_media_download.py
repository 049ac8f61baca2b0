"""Telegram media download: the real Telethon adapter over the offline platform (Telethon's own
get_messages and upload.getFile parts), the fake behind the same port, and the size/type limits."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from telethon.tl import types

from connectors.base import PermanentError, RateLimited, RetryableError
from connectors.telegram.fake import FakeTelegramGateway, FakeTelegramWorld
from connectors.telegram.gateway import (
    FloodWait,
    MediaUnavailable,
    NotAuthorized,
    PeerRef,
    TelegramGateway,
    TgMedia,
)
from connectors.telegram.login import start_login, submit_code
from connectors.telegram.media import download_message_media, parse_message_key
from connectors.telegram.telethon_gateway import TelethonGateway
from tests.unit.telegram.offline_client import OfflineClient, OfflineTelegram

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(300_000) + b"\xff\xd9"  # three 128 KiB parts
PDF = b"%PDF-1.7\n" + os.urandom(5_000) + b"\n%%EOF"


def offline() -> tuple[OfflineTelegram, TelethonGateway, PeerRef]:
    platform = OfflineTelegram()
    platform.add_user(5001, "Ada", access_hash=9191)
    gw = TelethonGateway(OfflineClient(platform))
    state = submit_code(gw, start_login(gw, platform.phone), platform.code)
    assert state.step == "authorized"
    return platform, TelethonGateway(OfflineClient(platform, state.session)), PeerRef("user", 5001, 9191)


def leftovers(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


# --- the Telethon adapter ----------------------------------------------------------------------


def test_adapter_downloads_the_largest_photo_size_in_parts(tmp_path: Path) -> None:
    platform, gw, ada = offline()
    msg = platform.add_photo(ada.peer_id, JPEG, caption="the parcel")
    photo_id = msg.media.photo.id

    out = io.BytesIO()
    media = gw.download_media(ada, msg.id, out)
    assert out.getvalue() == JPEG  # the progressive "y" size, not the thumbnail nor the larger video size
    assert media == TgMedia("image", "image/jpeg", None, len(JPEG), str(photo_id))
    assert [(fid, off) for fid, off, _ in platform.file_parts] == [(photo_id, 0), (photo_id, 131072),
                                                                    (photo_id, 262144)]

    stored = download_message_media(gw, ada, msg.id, tmp_path / "media", expected_media_id=str(photo_id))
    assert stored.path.read_bytes() == JPEG and stored.mime_type == "image/jpeg"
    assert stored.sha256 == hashlib.sha256(JPEG).hexdigest() and stored.size_bytes == len(JPEG)
    assert stored.path == tmp_path / "media" / stored.sha256[:2] / f"{stored.sha256}.jpg"
    again = download_message_media(gw, ada, msg.id, tmp_path / "media")
    assert again.path == stored.path and leftovers(tmp_path / "media") == [stored.path]  # content-addressed
    gw.close()


def test_adapter_refuses_size_and_type_before_the_first_part_and_caps_the_bytes(tmp_path: Path) -> None:
    platform, gw, ada = offline()
    big = platform.add_document(ada.peer_id, PDF, mime_type="application/pdf", file_name="invoice.pdf",
                                declared_size=500 * 1024 * 1024)
    exe = platform.add_document(ada.peer_id, b"MZ" + bytes(100), mime_type="application/x-msdownload",
                                file_name="setup.exe")
    liar = platform.add_document(ada.peer_id, PDF, mime_type="application/pdf", file_name="small.pdf",
                                 declared_size=10)

    with pytest.raises(PermanentError) as too_large:
        download_message_media(gw, ada, big.id, tmp_path)
    assert too_large.value.code == "media_too_large" and "524288000 bytes" in str(too_large.value)
    with pytest.raises(PermanentError) as not_allowed:
        download_message_media(gw, ada, exe.id, tmp_path)
    assert not_allowed.value.code == "media_type_not_allowed"
    assert platform.file_parts == []  # refused on the metadata: not one byte fetched

    with pytest.raises(PermanentError) as capped:  # the metadata lied: the bytes are counted too
        download_message_media(gw, ada, liar.id, tmp_path, max_bytes=1_000)
    assert capped.value.code == "media_too_large"
    assert leftovers(tmp_path) == []  # nothing left behind

    ok = download_message_media(gw, ada, liar.id, tmp_path)
    assert ok.path.read_bytes() == PDF and ok.path.suffix == ".pdf" and ok.mime_type == "application/pdf"
    gw.close()


def test_adapter_reports_gone_empty_and_expired_media() -> None:
    platform, gw, ada = offline()
    platform.add_user(5002, "Bob", access_hash=8282)
    text = platform.add_message(ada.peer_id, "just text")
    bobs = platform.add_photo(5002, JPEG)
    expired = platform.add_message(ada.peer_id, "", media=types.MessageMediaPhoto(photo=types.PhotoEmpty(id=77),
                                                                                  ttl_seconds=10))
    cases = {999: "MESSAGE_NOT_FOUND", bobs.id: "MESSAGE_NOT_FOUND",  # an id of another chat is not Ada's
             text.id: "NO_MEDIA", expired.id: "MEDIA_EXPIRED"}
    for message_id, code in cases.items():
        with pytest.raises(MediaUnavailable) as info:
            gw.download_media(ada, message_id, io.BytesIO())
        assert info.value.code == code, message_id
    # messages.getMessages takes bare ids for private chats: Telegram does not check the access hash
    out = io.BytesIO()
    photo = platform.add_photo(ada.peer_id, JPEG)
    gw.download_media(PeerRef("user", 5001, 1), photo.id, out)
    assert out.getvalue() == JPEG
    gw.close()


def test_adapter_flood_wait_and_file_references_that_expire_mid_download() -> None:
    platform, gw, ada = offline()
    photo = platform.add_photo(ada.peer_id, JPEG)
    doc = platform.add_document(ada.peer_id, PDF, mime_type="application/pdf", file_name="a.pdf")

    platform.flood["GetFileRequest"] = 45
    with pytest.raises(FloodWait) as flood:
        gw.download_media(ada, photo.id, io.BytesIO())
    assert isinstance(flood.value, RateLimited) and flood.value.retry_after == 45.0

    # a photo's reference: Telethon does not refetch it, the next attempt (which fetches the message) works
    platform.expire_ref_once.add(photo.media.photo.id)
    with pytest.raises(RetryableError) as stale:
        gw.download_media(ada, photo.id, io.BytesIO())
    assert stale.value.code == "FILE_REFERENCE_EXPIRED"
    out = io.BytesIO()
    gw.download_media(ada, photo.id, out)
    assert out.getvalue() == JPEG

    # a document's reference: Telethon refetches the message by itself and continues
    platform.expire_ref_once.add(doc.media.document.id)
    platform.requests.clear()
    out = io.BytesIO()
    gw.download_media(ada, doc.id, out)
    assert out.getvalue() == PDF
    assert platform.requests.count("GetMessagesRequest") == 2
    gw.close()


# --- the fake, behind the same port ------------------------------------------------------------


PHONE = "+15550002222"


def fake() -> tuple[FakeTelegramWorld, FakeTelegramGateway, PeerRef]:
    world = FakeTelegramWorld()
    world.add_account(PHONE)
    gw = FakeTelegramGateway(world)
    state = submit_code(gw, start_login(gw, PHONE), "12345")
    return world, FakeTelegramGateway(world, state.session), world.add_private_chat(PHONE, "Ada")


def test_fake_serves_the_bytes_of_media_it_created(tmp_path: Path) -> None:
    world, gw, ada = fake()
    photo = world.receive_media(PHONE, ada, "image", JPEG, caption="look")
    assert photo.media is not None and photo.media.mime_type == "image/jpeg" and photo.media.size_bytes == len(JPEG)
    doc = world.receive_media(PHONE, ada, "document", PDF, mime_type="application/pdf", file_name="inv.pdf")

    out = io.BytesIO()
    assert gw.download_media(ada, photo.id, out) == photo.media and out.getvalue() == JPEG
    stored = download_message_media(gw, ada, doc.id, tmp_path, expected_media_id=doc.media.media_id if doc.media else None)
    assert stored.path.read_bytes() == PDF and stored.mime_type == "application/pdf"

    sent_file = tmp_path / "reply.pdf"
    sent_file.write_bytes(b"%PDF reply")
    sent = gw.send_file(ada, str(sent_file), caption="here")
    out = io.BytesIO()
    gw.download_media(ada, sent.id, out)
    assert out.getvalue() == b"%PDF reply"


def test_fake_refuses_like_telegram() -> None:
    world, gw, ada = fake()
    text = world.receive(PHONE, ada, "hello")
    unknown = world.receive(PHONE, ada, None, media=TgMedia("image", "image/jpeg", None, 10, "424242"))
    gone = world.receive_media(PHONE, ada, "image", JPEG)
    deleted = world.receive_media(PHONE, ada, "image", JPEG)
    world.expire_media(PHONE, ada, gone.id)
    world.delete(PHONE, ada, [deleted.id])

    def code(message_id: int, gateway: TelegramGateway = gw, peer: PeerRef = ada) -> str | None:
        with pytest.raises(PermanentError) as info:
            gateway.download_media(peer, message_id, io.BytesIO())
        return info.value.code

    assert code(text.id) == "NO_MEDIA"
    assert code(unknown.id) == "MEDIA_EXPIRED"  # media the fake never created has no bytes
    assert code(gone.id) == "MEDIA_EXPIRED"
    assert code(deleted.id) == "MESSAGE_NOT_FOUND"
    shop = world.add_channel(PHONE, "Shop news")
    post = world.receive_media(PHONE, shop, "image", JPEG)
    assert code(post.id, peer=PeerRef("channel", shop.peer_id, 1)) == "PEER_ID_INVALID"  # channels need the hash
    assert code(1, peer=PeerRef("user", 1, 1)) == "PEER_ID_INVALID"  # a chat this account does not have
    out = io.BytesIO()
    gw.download_media(PeerRef("user", ada.peer_id, 1), world.receive_media(PHONE, ada, "image", JPEG).id, out)
    assert out.getvalue() == JPEG  # private chats: bare ids, no access hash check (as on Telegram)

    ok = world.receive_media(PHONE, ada, "image", JPEG)
    world.inject_flood_wait("download_media", 30)
    with pytest.raises(FloodWait):
        gw.download_media(ada, ok.id, io.BytesIO())
    with pytest.raises(NotAuthorized):
        FakeTelegramGateway(world).download_media(ada, ok.id, io.BytesIO())
    out = io.BytesIO()
    gw.download_media(ada, ok.id, out)
    assert out.getvalue() == JPEG


# --- the same contract on both implementations -------------------------------------------------


def _offline_photo() -> tuple[TelegramGateway, PeerRef, int, int, Callable[[], None]]:
    platform, gw, ada = offline()
    photo = platform.add_photo(ada.peer_id, JPEG)
    text = platform.add_message(ada.peer_id, "text")

    def flood() -> None:
        platform.flood["GetMessagesRequest"] = 12

    return gw, ada, photo.id, text.id, flood


def _fake_photo() -> tuple[TelegramGateway, PeerRef, int, int, Callable[[], None]]:
    world, gw, ada = fake()
    photo = world.receive_media(PHONE, ada, "image", JPEG)
    text = world.receive(PHONE, ada, "text")
    return gw, ada, photo.id, text.id, lambda: world.inject_flood_wait("download_media", 12)


@pytest.mark.parametrize("make", [_offline_photo, _fake_photo], ids=["telethon", "fake"])
def test_both_gateways_keep_the_same_contract(make: Callable[[], tuple[TelegramGateway, PeerRef, int, int,
                                                                        Callable[[], None]]],
                                              tmp_path: Path) -> None:
    gw, peer, photo_id, text_id, flood = make()
    seen: list[TgMedia] = []
    out = io.BytesIO()
    media = gw.download_media(peer, photo_id, out, check=seen.append)
    assert seen == [media] and media.kind == "image" and media.mime_type == "image/jpeg"
    assert media.size_bytes == len(JPEG) and out.getvalue() == JPEG

    def refuse(m: TgMedia) -> None:
        raise PermanentError("no", code="refused_by_check")

    untouched = io.BytesIO()
    with pytest.raises(PermanentError, match="no"):
        gw.download_media(peer, photo_id, untouched, check=refuse)
    assert untouched.getvalue() == b""
    with pytest.raises(MediaUnavailable):
        gw.download_media(peer, text_id, io.BytesIO())
    flood()
    with pytest.raises(FloodWait) as info:
        gw.download_media(peer, photo_id, io.BytesIO())
    assert info.value.seconds == 12
    stored = download_message_media(gw, peer, photo_id, tmp_path, expected_media_id=media.media_id)
    assert stored.path.read_bytes() == JPEG
    with pytest.raises(PermanentError) as replaced:
        download_message_media(gw, peer, photo_id, tmp_path, expected_media_id="1")
    assert replaced.value.code == "media_replaced"
    gw.close()


def test_message_keys() -> None:
    assert parse_message_key("-1001900000001:17") == (-1001900000001, 17)
    for bad in ("", "17", "a:b", "1:"):
        with pytest.raises(PermanentError):
            parse_message_key(bad)
