"""Media of incoming messages is downloaded through the real WhatsApp connector from the sandbox."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select, text

from connectors.sandbox import SandboxConfig, create_app
from switchboard.auth.users import create_user
from switchboard.db.schema import Attachment
from switchboard.policy import actor_for_user
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.ingest import ingest_items
from switchboard.services.media import attachment_file, claim_media
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor, AttachmentRef, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.media import DEFAULT_LEASE_SECONDS, download_media_once
from tests.fakes.server import run_asgi

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_media_is_downloaded_once_and_refusals_are_kept(engine: Engine, tmp_path: Path) -> None:
    key = get_settings().secret_key_bytes()
    config = SandboxConfig(phone_number_id="100", access_token="tok", app_secret="s", webhook_url="")
    with run_asgi(create_app(config)) as base:
        up = httpx.post(f"{base}/v21.0/100/media", headers={"Authorization": "Bearer tok"},
                        data={"messaging_product": "whatsapp"}, files={"file": ("a.png", PNG, "image/png")})
        assert up.status_code == 200, up.text
        media_id = up.json()["id"]
        with UnitOfWork(engine) as uow:
            org = create_organization(uow, "Media")
            ch = create_channel(uow, Actor.system(org), key="wa", provider="sandbox", name="WA", secret_key=key, external_id="100",
                                credentials={"access_token": "tok", "app_secret": "s", "phone_number_id": "100",
                                             "api_base_url": base})
            agent = create_user(uow, org, email="m@media.test", name="M", role="agent", secret_key=key,
                                password="long enough password")
            grant_channel_permission(uow, Actor.system(org), user_id=agent.user_id, channel_id=ch.id, can_view=True)
            uow.commit()
        with UnitOfWork(engine) as uow:
            ingest_items(uow, channel_id=ch.id, items=[
                InboundMessage(provider_message_id="wamid.img", contact=ContactRef("49"), sent_at=datetime.now(UTC),
                               body=None, content_type="image",
                               attachments=(AttachmentRef(kind="image", mime_type="image/png",
                                                          provider_media_id=media_id),)),
                InboundMessage(provider_message_id="wamid.gone", contact=ContactRef("49"),
                               sent_at=datetime.now(UTC), body=None, content_type="image",
                               attachments=(AttachmentRef(kind="image", provider_media_id="404404"),)),
            ])
            uow.commit()
        connectors = ConnectorCache(engine, key)
        try:
            stats = download_media_once(engine, connectors, tmp_path / "media")
            assert (stats.stored, stats.refused) == (1, 1)
            assert download_media_once(engine, connectors, tmp_path / "media").stored == 0  # once
        finally:
            connectors.close()
    with UnitOfWork(engine) as uow:
        rows = {r.provider_media_id: (r.id, r.sha256, r.local_path, dict(r.data))
                for r in uow.session.execute(select(Attachment)).scalars()}
        actor = actor_for_user(uow, agent.user_id)
        stored = attachment_file(uow, actor, rows[media_id][0])
    assert Path(stored.path).read_bytes() == PNG
    assert rows[media_id][1] == hashlib.sha256(PNG).hexdigest()
    assert rows["404404"][2] is None and rows["404404"][3].get("download_error")


def _pending_images(engine: Engine, n: int) -> set[int]:
    """``n`` image attachments waiting for their download on a sandbox channel (no platform needed)."""
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Leases")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="sandbox", name="WA", secret_key=get_settings()
                            .secret_key_bytes(), external_id="100",
                            credentials={"access_token": "tok", "app_secret": "s", "phone_number_id": "100"})
        ingest_items(uow, channel_id=ch.id, items=[
            InboundMessage(provider_message_id=f"wamid.{i}", contact=ContactRef("49"), sent_at=datetime.now(UTC),
                           body=None, content_type="image",
                           attachments=(AttachmentRef(kind="image", provider_media_id=f"media-{i}"),))
            for i in range(n)])
        uow.commit()
        return set(uow.session.execute(select(Attachment.id)).scalars())


def claimed(uow: UnitOfWork, *, limit: int, now: datetime | None = None) -> set[int]:
    return {m.attachment_id for m in claim_media(uow, limit=limit, lease_seconds=DEFAULT_LEASE_SECONDS, now=now)}


def test_two_workers_claim_disjoint_media_and_a_crashed_workers_lease_expires(engine: Engine) -> None:
    every = _pending_images(engine, 5)
    with UnitOfWork(engine) as first, UnitOfWork(engine) as second:
        mine = claimed(first, limit=2)
        theirs = claimed(second, limit=10)  # while the first claim is open
        first.commit()
        second.commit()
    assert len(mine) == 2 and mine | theirs == every and not mine & theirs
    with UnitOfWork(engine) as third:
        assert claimed(third, limit=10) == set()  # leased: nobody else takes them, no lock is held
        third.commit()
    # both workers "crash" without recording anything: after the lease, another worker retries
    later = datetime.now(UTC) + timedelta(seconds=DEFAULT_LEASE_SECONDS + 1)
    with UnitOfWork(engine) as fourth:
        assert claimed(fourth, limit=10, now=later) == every


def test_concurrent_runs_download_each_file_once_outside_any_transaction(engine: Engine, tmp_path: Path) -> None:
    key = get_settings().secret_key_bytes()
    config = SandboxConfig(phone_number_id="100", access_token="tok", app_secret="s", webhook_url="")
    with run_asgi(create_app(config)) as base:
        media_ids = []
        for i in range(6):
            up = httpx.post(f"{base}/v21.0/100/media", headers={"Authorization": "Bearer tok"},
                            data={"messaging_product": "whatsapp"},
                            files={"file": (f"{i}.png", PNG + bytes([i]), "image/png")})
            media_ids.append(up.json()["id"])
        with UnitOfWork(engine) as uow:
            org = create_organization(uow, "Concurrent")
            ch = create_channel(uow, Actor.system(org), key="wa", provider="sandbox", name="WA", secret_key=key, external_id="100",
                                credentials={"access_token": "tok", "app_secret": "s", "phone_number_id": "100",
                                             "api_base_url": base})
            ingest_items(uow, channel_id=ch.id, items=[
                InboundMessage(provider_message_id=f"wamid.{m}", contact=ContactRef("49"), sent_at=datetime.now(UTC),
                               body=None, content_type="image",
                               attachments=(AttachmentRef(kind="image", provider_media_id=m),))
                for m in media_ids])
            uow.commit()
        quiet: list[bool] = []  # per download: was the database ever free of open transactions meanwhile?
        real_port = ConnectorCache.port

        def no_open_transaction() -> bool:
            # the other worker's short claim/record transactions come and go; one held across a
            # download (the old design) would never go
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as con:
                for _ in range(100):
                    if not con.execute(text(
                            "select count(*) from pg_stat_activity where datname = current_database() "
                            "and state like 'idle in transaction%' and pid <> pg_backend_pid()")).scalar_one():
                        return True
                    time.sleep(0.02)
            return False

        class Watching(ConnectorCache):
            def port(self, channel_id: int, capability: Any) -> Any:  # called right before each download
                quiet.append(no_open_transaction())
                return real_port(self, channel_id, capability)

        results: list[Any] = []
        barrier = threading.Barrier(2)

        def worker() -> None:
            connectors = Watching(engine, key)
            try:
                barrier.wait()
                results.append(download_media_once(engine, connectors, tmp_path / "media", limit=4))
            finally:
                connectors.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sum(r.stored for r in results) == 6 and all(r.refused == r.retrying == 0 for r in results)
    assert len(quiet) == 6 and all(quiet)  # no transaction (and no row lock) held across a download
    with UnitOfWork(engine) as uow:
        rows = uow.session.execute(select(Attachment.local_path, Attachment.download_claimed_until)).all()
    assert all(path and claimed is None for path, claimed in rows)
