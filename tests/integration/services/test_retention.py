"""Retention: the cleanup flow's work deletes exactly what each organization no longer keeps, in batches."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, update

from switchboard.db.schema import (
    Attachment,
    EventDelivery,
    Invite,
    LoginSession,
    Message,
    Organization,
    PipelineRun,
    PlatformSignal,
    WebhookEvent,
)
from switchboard.services.event_webhooks import create_event_webhook
from switchboard.services.organizations import get_organization, update_settings
from switchboard.storage import store_bytes
from switchboard.workflows.retention import cleanup_once

from .conftest import KEY, World, at

NOW = at(60 * 24 * 400)  # a little over a year after the world's first message


def _ago(days: float) -> object:
    return NOW - timedelta(days=days)


def _count(w: World, table: type) -> int:
    with w.uow() as u:
        return int(u.session.execute(select(func.count()).select_from(table)).scalar_one())


def _seed(w: World) -> None:
    w.ingest(w.wa, "c1", "m1", 0, "hello")
    conv = w.conversation(w.wa, "c1")
    with w.uow() as u:
        s = u.session
        # ended (expired, revoked, used) more than a week ago: deleted; recently ended: kept a week
        for token, expires, revoked in (("live", NOW + timedelta(days=1), None), ("just revoked", NOW, _ago(1)),
                                        ("expired", _ago(8), None), ("revoked", NOW + timedelta(days=1), _ago(8))):
            s.execute(insert(LoginSession).values(token_hash=token, user_id=w.a1.user_id, expires_at=expires,
                                                  revoked_at=revoked))
        for token, expires, used in (("open", NOW + timedelta(days=1), None), ("late", _ago(8), None),
                                     ("used", NOW + timedelta(days=1), _ago(9)), ("just used", NOW, _ago(2))):
            s.execute(insert(Invite).values(user_id=w.a2.user_id, token_hash=token, expires_at=expires, used_at=used))
        # processed: kept 30 days (org 1 sets 10); rejected/failed: 180 days; never one still to process
        for channel, status, days in ((w.wa, "PROCESSED", 11), (w.wa, "PROCESSED", 9), (w.wa, "IGNORED", 40),
                                      (w.wa, "REJECTED", 40), (w.wa, "FAILED", 200), (w.wa, "RECEIVED", 400),
                                      (w.other_ch, "PROCESSED", 11), (w.other_ch, "PROCESSED", 31),
                                      (None, "REJECTED", 181)):
            s.execute(insert(WebhookEvent).values(channel_id=channel, provider="whatsapp", body=b"{}", status=status,
                                                  received_at=_ago(days)))
        sub = create_event_webhook(u, w.admin, url="https://crm.example.test/hook", events=["message.received"],
                                   secret_key=KEY).view.id
        for n, (status, days) in enumerate((("DELIVERED", 11), ("DELIVERED", 9), ("FAILED", 40), ("FAILED", 181),
                                            ("PENDING", 400))):
            s.execute(insert(EventDelivery).values(organization_id=w.org, subscription_id=sub, event_id=f"evt_{n}",
                                                   event_type="message.received", payload={}, status=status,
                                                   created_at=_ago(days)))
        for org, name, days in ((w.org, "telegram-sync", 100), (w.org, "telegram-sync", 95), (w.org, "telegram-sync", 1),
                                (None, "send-outbox", 100), (None, "send-outbox", 99), (None, "cleanup", 300)):
            s.execute(insert(PipelineRun).values(organization_id=org, name=name, started_at=_ago(days),
                                                 finished_at=_ago(days), status="ok"))
        for pmid, status, days in (("m1", "SENT", 8), ("m2", "FAILED", 9), ("m3", "SENT", 1), ("m4", "PENDING", 30)):
            s.execute(insert(PlatformSignal).values(organization_id=w.org, channel_id=w.wa, conversation_id=conv,
                                                    kind="read", recipient_id="c1", provider_message_id=pmid,
                                                    status=status, created_at=_ago(days), done_at=_ago(days)))


def test_cleanup_deletes_what_retention_no_longer_keeps(world: World, tmp_path: Path) -> None:
    _seed(world)
    with world.uow() as u:
        update_settings(u, world.admin, retention_webhook_days=10)
        assert get_organization(u, world.admin).retention_webhook_days == 10
    media = tmp_path / "media"
    used, _ = store_bytes(media, b"still attached", "image/png")
    orphan, _ = store_bytes(media, b"nobody uses me", "image/png")
    fresh, _ = store_bytes(media, b"just uploaded", "image/png")
    part = used.parent / ".part-x"
    part.write_bytes(b"half a download")
    old = (NOW - timedelta(days=2)).timestamp()
    for p in (used, orphan, part):
        os.utime(p, (old, old))
    os.utime(fresh, (NOW.timestamp(), NOW.timestamp()))
    with world.uow() as u:
        message = u.session.execute(select(Message.id)).scalar_one()
        u.session.execute(insert(Attachment).values(message_id=message, kind="image", local_path=str(used)))

    counts = cleanup_once(world.engine, media, now=NOW, batch=2)  # tiny batches: each purge drains in rounds

    assert counts == {"login_state": 4, "webhook_events": 5, "event_deliveries": 2, "pipeline_runs": 3, "platform_signals": 2,
                      "media_files": 2, "media_bytes": len(b"nobody uses me") + len(b"half a download")}
    with world.uow() as u:
        s = u.session
        assert sorted(s.execute(select(LoginSession.token_hash)).scalars()) == ["just revoked", "live"]
        assert sorted(s.execute(select(Invite.token_hash)).scalars()) == ["just used", "open"]
        left = s.execute(select(WebhookEvent.channel_id, WebhookEvent.status).order_by(WebhookEvent.id)).all()
        assert [tuple(r) for r in left] == [(world.wa, "PROCESSED"), (world.wa, "REJECTED"), (world.wa, "RECEIVED"),
                                            (world.other_ch, "PROCESSED")]
        runs = s.execute(select(PipelineRun.name, PipelineRun.started_at).order_by(PipelineRun.id)).all()
        assert [(n, NOW - t) for n, t in runs] == [("telegram-sync", timedelta(days=1)),
                                                   ("send-outbox", timedelta(days=99)),  # the latest is kept
                                                   ("cleanup", timedelta(days=300))]
        assert sorted(s.execute(select(PlatformSignal.provider_message_id)).scalars()) == ["m3", "m4"]
        assert sorted(s.execute(select(EventDelivery.event_id)).scalars()) == ["evt_1", "evt_2", "evt_4"]
    assert used.exists() and fresh.exists() and not orphan.exists() and not part.exists()
    assert cleanup_once(world.engine, media, now=NOW)["webhook_events"] == 0  # idempotent


def test_retention_settings_are_validated_and_per_organization(world: World) -> None:
    import pytest

    from switchboard.errors import InvalidInput, PermissionDenied

    with world.uow() as u, pytest.raises(InvalidInput, match="between 1 and"):
        update_settings(u, world.admin, retention_runs_days=0)
    with world.uow() as u, pytest.raises(PermissionDenied):
        update_settings(u, world.manager, retention_runs_days=5)
    with world.uow() as u:
        update_settings(u, world.admin, retention_signals_days=3)
        days = dict(u.session.execute(select(Organization.id, Organization.retention_signals_days)).tuples().all())
    assert days == {world.org: 3, world.org2: 7}
    with world.uow() as u:
        u.session.execute(update(Organization).values(retention_signals_days=7))
