"""The Prefect flows run for real (one test harness per session) against the test database."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from sqlalchemy import Engine, select

from pipelines import flows
from switchboard.auth.users import create_user
from switchboard.db.schema import Message, PipelineRun
from switchboard.policy import actor_for_user
from switchboard.services import conversations, outbox, webhooks
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

SECRET = "flow-secret"


def _body(msg_id: str, text: str) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "100"},
            "contacts": [{"profile": {"name": "Dora"}, "wa_id": "4917000000"}],
            "messages": [{"from": "4917000000", "id": msg_id, "timestamp": str(int(time.time())), "type": "text",
                          "text": {"body": text}}]}}]}]}).encode()


@pytest.mark.usefixtures("prefect_harness")
def test_process_and_send_flows(settings_env: str, engine: Engine) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Flows")
        # the platform is unreachable (closed port): sending must be retried, not lost
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", secret_key=key, external_id="100",
                            credentials={"app_secret": SECRET, "access_token": "t", "verify_token": "v",
                                         "phone_number_id": "100", "api_base_url": "http://127.0.0.1:9"})
        agent = create_user(uow, org, email="fa@flows.test", name="Fa", role="agent", secret_key=key,
                            password="long enough password")
        grant_channel_permission(uow, Actor.system(org), user_id=agent.user_id, channel_id=ch.id, can_view=True,
                                 can_send=True)
        uow.commit()
    body = _body("wamid.flow1", "hello from a flow")
    with UnitOfWork(engine) as uow:
        webhooks.store_event(uow, provider="whatsapp", channel_id=ch.id, body=body,
                             headers={"X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body,
                                                                                  hashlib.sha256).hexdigest()})
        uow.commit()

    result = flows.process_webhooks_flow(max_seconds=0)
    assert result["processed"] == 1 and result["messages_created"] == 1

    with UnitOfWork(engine) as uow:
        actor = actor_for_user(uow, agent.user_id)
        conv_id = uow.session.execute(select(Message.conversation_id)).scalar_one()
    with UnitOfWork(engine) as uow:
        conversations.accept(uow, actor, conv_id)
        uow.commit()
    with UnitOfWork(engine) as uow:
        msg = outbox.enqueue_reply(uow, actor, conv_id, "on it", idempotency_key="flow-1")
        uow.commit()

    sent = flows.send_outbox_flow(max_seconds=0)
    assert sent["sent"] == 0 and sent["retrying"] == 1
    with UnitOfWork(engine) as uow:
        row = uow.session.get(Message, msg.id)
        assert row is not None
        assert row.status == "PENDING" and row.attempts == 1 and row.error_message  # reason kept, retried later
        runs = {r.name: r.status for r in uow.session.execute(select(PipelineRun)).scalars()}
    assert runs == {"process-webhooks": "ok", "send-outbox": "ok"}

    built = flows.warehouse_build_flow(full=True)
    assert built["rows_extracted"] and get_settings().warehouse_file.exists()
