"""A delivery whose processing fails is retried with backoff, then FAILED for an admin to reprocess."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select, update

from pipelines.channels import ConnectorCache
from pipelines.processing import process_webhooks_once
from switchboard.db.schema import Channel, WebhookEvent
from switchboard.services import webhooks
from switchboard.services.channels import create_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.uow import UnitOfWork


def test_failed_processing_backs_off_then_fails_visibly(engine: Engine) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Retry")
        ch = create_channel(uow, org, key="wa", provider="whatsapp", name="WA", secret_key=key, external_id="1",
                            credentials={"app_secret": "s", "access_token": "t", "phone_number_id": "1"})
        # credentials encrypted with another key (e.g. a botched key rotation): processing cannot start
        uow.session.execute(update(Channel).where(Channel.id == ch.id).values(credentials_enc=b"v1" + b"x" * 60))
        uow.commit()
        event_id = webhooks.store_event(uow, provider="whatsapp", channel_id=ch.id, body=b'{"object": "x"}',
                                        headers={})
    connectors = ConnectorCache(engine, key)

    def state() -> tuple[str, int, str | None]:
        with UnitOfWork(engine) as uow:
            ev = uow.session.get(WebhookEvent, event_id)
            assert ev is not None
            return ev.status, ev.attempts, ev.reason

    assert process_webhooks_once(engine, connectors).errors == 1
    status, attempts, reason = state()
    assert (status, attempts) == ("RECEIVED", 1) and reason and "DecryptionError" in reason
    assert process_webhooks_once(engine, connectors).claimed == 0  # backing off (4 s)
    for expected in (2, 3, 4, 5):
        with UnitOfWork(engine) as uow:  # let the backoff pass
            uow.session.execute(update(WebhookEvent).values(
                processed_at=WebhookEvent.processed_at - timedelta(hours=3)))
            uow.commit()
        process_webhooks_once(engine, connectors)
        assert state()[1] == expected
    assert state()[0] == "FAILED"
    with UnitOfWork(engine) as uow:
        listed = webhooks.list_events(uow, org, statuses=("FAILED",))
        assert [e.id for e in listed] == [event_id]
        webhooks.reprocess(uow, event_id)
    assert state()[:2] == ("RECEIVED", 0)
    with UnitOfWork(engine) as uow:
        assert uow.session.execute(select(WebhookEvent.reason)).scalar_one() is None
