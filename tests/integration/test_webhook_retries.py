"""A delivery whose processing fails is retried with backoff, then FAILED for an admin to reprocess."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select, update

from switchboard.db.schema import Channel, WebhookEvent
from switchboard.services import webhooks
from switchboard.services.channels import create_channel
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import process_webhooks_once


def test_failed_processing_backs_off_then_fails_visibly(engine: Engine) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Retry")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", secret_key=key, external_id="1",
                            credentials={"app_secret": "s", "access_token": "t", "phone_number_id": "1"})
        # credentials encrypted with another key (e.g. a botched key rotation): processing cannot start
        uow.session.execute(update(Channel).where(Channel.id == ch.id).values(credentials_enc=b"v1" + b"x" * 60))
        uow.commit()
        event_id = webhooks.store_event(uow, provider="whatsapp", channel_id=ch.id, body=b'{"object": "x"}',
                                        headers={})
        uow.commit()
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
        other = create_organization(uow, "Someone else")
        assert webhooks.list_events(uow, other, statuses=("FAILED",)) == []  # never another organization's
        assert not webhooks.reprocess(uow, event_id, organization_id=org + 1000)  # another organization
        assert webhooks.reprocess(uow, event_id, organization_id=org)
        uow.commit()
    assert state()[:2] == ("RECEIVED", 0)
    with UnitOfWork(engine) as uow:
        assert uow.session.execute(select(WebhookEvent.reason)).scalar_one() is None


def test_status_that_overtakes_the_send_is_applied_on_retry(engine: Engine) -> None:
    import hashlib
    import hmac
    import json
    from datetime import UTC, datetime

    from switchboard.auth.users import create_user
    from switchboard.db.schema import Message
    from switchboard.policy import actor_for_user
    from switchboard.services import conversations, outbox
    from switchboard.services.channels import grant_channel_permission
    from switchboard.services.ingest import ingest_items
    from switchboard.types import ContactRef, InboundMessage

    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Race")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", secret_key=key, external_id="1",
                            credentials={"app_secret": "s", "access_token": "t", "phone_number_id": "1"})
        agent = create_user(uow, org, email="r@race.test", name="R", role="agent", secret_key=key,
                            password="long enough password")
        grant_channel_permission(uow, Actor.system(org), user_id=agent.user_id, channel_id=ch.id, can_view=True, can_send=True)
        uow.commit()
    with UnitOfWork(engine) as uow:
        res = ingest_items(uow, channel_id=ch.id, items=[InboundMessage(
            provider_message_id="wamid.in", contact=ContactRef("49"), sent_at=datetime.now(UTC), body="hi")])
        uow.commit()
        conv_id = res.conversation_ids[0]
    with UnitOfWork(engine) as uow:
        actor = actor_for_user(uow, agent.user_id)
    with UnitOfWork(engine) as uow:
        conversations.accept(uow, actor, conv_id)
        uow.commit()
    with UnitOfWork(engine) as uow:
        msg = outbox.enqueue_reply(uow, actor, conv_id, "hello", idempotency_key="race-1")
        uow.commit()
    with UnitOfWork(engine) as uow:
        (job,) = outbox.claim_due(uow)
        uow.commit()

    # the platform's "delivered" arrives before our send was recorded
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1"},
                                       "statuses": [{"id": "wamid.out", "status": "delivered",
                                                     "timestamp": str(int(datetime.now(UTC).timestamp())),
                                                     "recipient_id": "49"}]}}]}]}).encode()
    with UnitOfWork(engine) as uow:
        event_id = webhooks.store_event(uow, provider="whatsapp", channel_id=ch.id, body=body, headers={
            "x-hub-signature-256": "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()})
        uow.commit()
    connectors = ConnectorCache(engine, key)
    process_webhooks_once(engine, connectors)
    with UnitOfWork(engine) as uow:
        ev = uow.session.get(WebhookEvent, event_id)
        assert ev is not None and ev.status == "RECEIVED" and ev.attempts == 1 and "not stored yet" in (ev.reason or "")
        outbox.record_sent(uow, msg.id, token=job.token, provider_message_id="wamid.out", sent_at=datetime.now(UTC))
        uow.commit()
    with UnitOfWork(engine) as uow:
        uow.session.execute(update(WebhookEvent).values(processed_at=WebhookEvent.processed_at - timedelta(hours=1)))
        uow.commit()
    process_webhooks_once(engine, connectors)
    with UnitOfWork(engine) as uow:
        assert uow.session.execute(select(WebhookEvent.status).where(WebhookEvent.id == event_id)).scalar_one() \
            == "PROCESSED"
        assert uow.session.execute(select(Message.status).where(Message.id == msg.id)).scalar_one() == "DELIVERED"
