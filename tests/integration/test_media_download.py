"""Media of incoming messages is downloaded through the real WhatsApp connector from the sandbox."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine, select

from connectors.sandbox import SandboxConfig, create_app
from switchboard.auth.users import create_user
from switchboard.db.schema import Attachment
from switchboard.policy import actor_for_user
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.ingest import ingest_items
from switchboard.services.media import attachment_file
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor, AttachmentRef, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.media import download_media_once
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
