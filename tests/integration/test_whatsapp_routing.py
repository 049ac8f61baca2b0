"""One Meta app, one callback URL, several numbers: each WhatsApp change goes to its number's channel.

Real parts only: signed deliveries go through the receiver over HTTP, the process flow parses and
routes them, the ingest services store them in the embedded PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, update

from switchboard.auth.users import create_user
from switchboard.db.schema import Channel, Message, WebhookEvent
from switchboard.errors import InvalidInput, PermissionDenied
from switchboard.http.receiver import create_app
from switchboard.policy import actor_for_user
from switchboard.services import conversations, inbox_views, operations, outbox, webhooks
from switchboard.services.channels import ChannelView, create_channel, grant_channel_permission
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import process_webhooks_once
from tests.fakes.server import run_asgi

APP_SECRET = "one-app-secret"  # both numbers are on the same Meta app: one secret, one callback URL
NUMBER_A, NUMBER_B, NUMBER_OTHER_ORG, NUMBER_UNKNOWN = "111000111", "222000222", "333000333", "444000444"


def _creds(number: str, secret: str = APP_SECRET) -> dict[str, Any]:
    return {"app_secret": secret, "access_token": "t", "verify_token": "v", "phone_number_id": number}


def _message(number: str, wamid: str, text: str, sender: str = "4915100000001") -> dict[str, Any]:
    return {"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": f"1555{number[:4]}", "phone_number_id": number},
        "contacts": [{"profile": {"name": "Customer"}, "wa_id": sender}],
        "messages": [{"from": sender, "id": wamid, "timestamp": str(int(datetime.now(UTC).timestamp())),
                      "type": "text", "text": {"body": text}}]}}


def _status(number: str, wamid: str, status: str, recipient: str = "4915100000001") -> dict[str, Any]:
    return {"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": f"1555{number[:4]}", "phone_number_id": number},
        "statuses": [{"id": wamid, "status": status, "timestamp": str(int(datetime.now(UTC).timestamp())),
                      "recipient_id": recipient}]}}


def _delivery(*changes: dict[str, Any]) -> bytes:
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "waba-1", "changes": list(changes)}]}).encode()


@dataclass
class World:
    engine: Engine
    base_url: str
    org: int
    other_org: int
    a: ChannelView
    b: ChannelView
    other: ChannelView
    admin: Actor
    connectors: ConnectorCache

    def post(self, channel: ChannelView, body: bytes, secret: str = APP_SECRET) -> None:
        sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        r = httpx.post(f"{self.base_url}/webhooks/{channel.provider}/{channel.webhook_key}", content=body,
                       headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"})
        assert r.status_code == 200, r.text

    def process(self) -> None:
        while process_webhooks_once(self.engine, self.connectors).claimed:
            pass

    def messages(self) -> dict[str, tuple[int, str, str | None]]:
        """provider message id -> (channel id, direction, status)."""
        with UnitOfWork(self.engine) as uow:
            rows = uow.session.execute(select(Message.provider_message_id, Message.channel_id, Message.direction,
                                              Message.status)).all()
        return {r.provider_message_id: (r.channel_id, r.direction, r.status) for r in rows}

    def events(self) -> list[tuple[int, str, str | None]]:
        with UnitOfWork(self.engine) as uow:
            rows = uow.session.execute(select(WebhookEvent.id, WebhookEvent.status, WebhookEvent.reason)
                                       .order_by(WebhookEvent.id)).all()
        return [(r.id, r.status, r.reason) for r in rows]


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Two Numbers")
        a = create_channel(uow, Actor.system(org), key="wa-a", provider="whatsapp", name="Sales", secret_key=key,
                           credentials=_creds(NUMBER_A))
        # channel B's number is in the credentials only (the external id is filled in from it)
        b = create_channel(uow, Actor.system(org), key="wa-b", provider="whatsapp", name="Support", secret_key=key,
                           credentials=_creds(NUMBER_B))
        other_org = create_organization(uow, "Someone Else")
        other = create_channel(uow, Actor.system(other_org), key="wa-x", provider="whatsapp", name="Theirs", secret_key=key,
                               credentials=_creds(NUMBER_OTHER_ORG))
        admin = create_user(uow, org, email="root@two.test", name="Root", role="admin", secret_key=key,
                            password="long enough password")
        uow.commit()
    with UnitOfWork(engine) as uow:
        admin_actor = actor_for_user(uow, admin.user_id)
    assert b.external_id == NUMBER_B
    connectors = ConnectorCache(engine, key)
    try:
        with run_asgi(create_app(engine, key)) as base:
            yield World(engine, base, org, other_org, a, b, other, admin_actor, connectors)
    finally:
        connectors.close()


def test_deliveries_for_both_numbers_on_one_url_land_in_their_channels(world: World) -> None:
    world.post(world.a, _delivery(_message(NUMBER_A, "wamid.a1", "hello sales")))
    world.post(world.a, _delivery(_message(NUMBER_B, "wamid.b1", "hello support")))
    # one delivery with a change for each number (Meta batches changes)
    world.post(world.a, _delivery(_message(NUMBER_B, "wamid.b2", "again support"),
                                  _message(NUMBER_A, "wamid.a2", "again sales")))
    # B's URL still works for B's own deliveries, and a platform retry on the other URL adds nothing
    world.post(world.b, _delivery(_message(NUMBER_B, "wamid.b1", "hello support")))
    world.process()

    msgs = world.messages()
    assert {k: v[0] for k, v in msgs.items()} == {"wamid.a1": world.a.id, "wamid.a2": world.a.id,
                                                  "wamid.b1": world.b.id, "wamid.b2": world.b.id}
    events = world.events()
    assert [s for _, s, _ in events] == ["PROCESSED"] * 4
    assert f"routed to channel wa-b (phone number id {NUMBER_B}): 1 item" in (events[1][2] or "")
    assert events[0][2] is None and events[3][2] is None
    with UnitOfWork(world.engine) as uow:  # one conversation per channel, each with its own messages
        inbox = inbox_views.list_conversations(uow, world.admin).items
    assert sorted((c.channel_key, c.last_message_preview) for c in inbox) == [
        ("wa-a", "again sales"), ("wa-b", "again support")]


def test_statuses_follow_the_number_of_the_message(world: World) -> None:
    key = get_settings().secret_key_bytes()
    world.post(world.a, _delivery(_message(NUMBER_B, "wamid.b-in", "need help")))
    world.process()
    with UnitOfWork(world.engine) as uow:
        agent = create_user(uow, world.org, email="agent@two.test", name="Agent", role="agent", secret_key=key,
                            password="long enough password")
        grant_channel_permission(uow, Actor.system(world.org), user_id=agent.user_id, channel_id=world.b.id, can_view=True,
                                 can_send=True)
        actor = actor_for_user(uow, agent.user_id)
        conv_id = uow.session.execute(select(Message.conversation_id)
                                      .where(Message.provider_message_id == "wamid.b-in")).scalar_one()
        uow.commit()
    with UnitOfWork(world.engine) as uow:
        conversations.accept(uow, actor, conv_id)
        uow.commit()
    with UnitOfWork(world.engine) as uow:
        reply = outbox.enqueue_reply(uow, actor, conv_id, "on it", idempotency_key="reply-b-1")
        uow.commit()
    with UnitOfWork(world.engine) as uow:
        (job,) = outbox.claim_due(uow)
        uow.commit()
    with UnitOfWork(world.engine) as uow:
        outbox.record_sent(uow, reply.id, token=job.token, provider_message_id="wamid.b-out", sent_at=datetime.now(UTC))
        uow.commit()

    # "delivered" for B's send arrives on A's URL; a "read" for it names a number with no channel
    world.post(world.a, _delivery(_status(NUMBER_B, "wamid.b-out", "delivered")))
    world.post(world.a, _delivery(_status(NUMBER_UNKNOWN, "wamid.b-out", "read")))
    world.process()

    assert world.messages()["wamid.b-out"] == (world.b.id, "OUTBOUND", "DELIVERED")  # not READ
    (_, s1, r1), (_, s2, r2) = world.events()[1:]
    assert s1 == "PROCESSED" and "routed to channel wa-b" in (r1 or "")
    assert s2 == "IGNORED"
    assert r2 == (f"{webhooks.NOT_ROUTED}phone number id {NUMBER_UNKNOWN} belongs to no WhatsApp channel of "
                  "this organization: 1 status not ingested")


def test_unknown_number_is_ignored_visibly_and_reprocessable_once_its_channel_exists(world: World) -> None:
    world.post(world.a, _delivery(_message(NUMBER_UNKNOWN, "wamid.u1", "who am I writing to?")))
    world.post(world.a, _delivery(_message(NUMBER_A, "wamid.a1", "hi"),
                                  _message(NUMBER_UNKNOWN, "wamid.u2", "and me?")))
    world.process()

    assert set(world.messages()) == {"wamid.a1"}  # nothing of the unknown number, nowhere
    (ignored_id, s1, r1), (partial_id, s2, r2) = world.events()
    why = f"phone number id {NUMBER_UNKNOWN} belongs to no WhatsApp channel of this organization"
    assert s1 == "IGNORED" and r1 == f"{webhooks.NOT_ROUTED}{why}: 1 message not ingested"
    assert s2 == "PROCESSED" and why in (r2 or "")

    # the admin sees both (the processed one because a part of it was not ingested), with the reason
    with UnitOfWork(world.engine) as uow:
        listed = {e.id: e for e in operations.overview(uow, world.admin).problem_deliveries}
    assert set(listed) == {ignored_id, partial_id}
    assert all(why in (e.reason or "") and e.reprocessable and e.channel_key == "wa-a" for e in listed.values())

    # the business adds the missing number; the admin reprocesses both deliveries
    key = get_settings().secret_key_bytes()
    with UnitOfWork(world.engine) as uow:
        c = create_channel(uow, Actor.system(world.org), key="wa-c", provider="whatsapp", name="Late", secret_key=key,
                           external_id=NUMBER_UNKNOWN, credentials=_creds(NUMBER_UNKNOWN))
        uow.commit()
    for event_id in (ignored_id, partial_id):
        with UnitOfWork(world.engine) as uow:
            operations.reprocess_delivery(uow, world.admin, event_id)
            uow.commit()
    world.process()
    msgs = world.messages()
    assert {k: v[0] for k, v in msgs.items()} == {"wamid.a1": world.a.id, "wamid.u1": c.id, "wamid.u2": c.id}
    assert [s for _, s, _ in world.events()] == ["PROCESSED", "PROCESSED"]
    with UnitOfWork(world.engine) as uow:
        assert operations.overview(uow, world.admin).problem_deliveries == []
        # a delivery that was fully processed is not reprocessable
        with pytest.raises(PermissionDenied, match="not a failed or unrouted delivery"):
            operations.reprocess_delivery(uow, world.admin, ignored_id)


def test_never_routed_to_another_organization(world: World) -> None:
    # the other organization's number, on our URL and signed with our app's secret
    world.post(world.a, _delivery(_message(NUMBER_OTHER_ORG, "wamid.x1", "for them?")))
    world.post(world.a, _delivery(_status(NUMBER_OTHER_ORG, "wamid.x-out", "delivered")))
    world.process()

    assert world.messages() == {}
    for _, status, reason in world.events():
        assert status == "IGNORED"
        assert f"phone number id {NUMBER_OTHER_ORG} belongs to no WhatsApp channel of this organization" \
            in (reason or "")
    with UnitOfWork(world.engine) as uow:
        # nothing shows up for the other organization either: the deliveries are ours (channel wa-a)
        assert webhooks.list_events(uow, world.other_org) == []
        assert len(webhooks.list_events(uow, world.org)) == 2
        assert not webhooks.reprocess(uow, world.events()[0][0], organization_id=world.other_org)


def test_sandbox_deliveries_are_routed_among_sandbox_channels_only(world: World) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(world.engine) as uow:
        sb = create_channel(uow, Actor.system(world.org), key="sb", provider="sandbox", name="Sandbox", secret_key=key,
                            credentials=_creds("555000555"))
        uow.commit()
    # B's number is a WhatsApp channel, not a sandbox one: not routed from the sandbox URL
    world.post(sb, _delivery(_message(NUMBER_B, "wamid.sb1", "hi")))
    world.process()
    assert world.messages() == {}
    ((_, status, reason),) = world.events()
    assert status == "IGNORED" and f"phone number id {NUMBER_B} belongs to no sandbox channel" in (reason or "")


def test_a_number_is_one_channel_of_an_organization(world: World) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(world.engine) as uow, pytest.raises(InvalidInput, match="already channel 'wa-b'"):
        create_channel(uow, Actor.system(world.org), key="wa-b2", provider="whatsapp", name="Dup", secret_key=key,
                       external_id=NUMBER_B)
    with UnitOfWork(world.engine) as uow, pytest.raises(InvalidInput, match="differ"):
        create_channel(uow, Actor.system(world.org), key="wa-d", provider="whatsapp", name="Mismatch", secret_key=key,
                       external_id="777", credentials=_creds("888"))
    with UnitOfWork(world.engine) as uow:  # the same number in another organization is that one's business
        create_channel(uow, Actor.system(world.other_org), key="wa-b", provider="whatsapp", name="Theirs too", secret_key=key,
                       credentials=_creds(NUMBER_B))
    world.post(world.a, _delivery(_message(NUMBER_B, "wamid.b9", "still ours")))
    world.process()
    assert world.messages()["wamid.b9"][0] == world.b.id


def test_a_channel_with_unreadable_credentials_does_not_stop_routing(world: World) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(world.engine) as uow:
        broken = create_channel(uow, Actor.system(world.org), key="wa-broken", provider="whatsapp", name="Broken",
                                secret_key=key, external_id="999000999", credentials=_creds("999000999"))
        # encrypted with another key (a botched key rotation): only its external id is known
        uow.session.execute(update(Channel).where(Channel.id == broken.id).values(credentials_enc=b"v1" + b"x" * 60))
        uow.commit()
    world.post(world.a, _delivery(_message(NUMBER_B, "wamid.b1", "hi"), _message("999000999", "wamid.k1", "hey")))
    world.process()
    # B's message is routed; the broken channel's is routed too, and its ingest does not need credentials
    assert {k: v[0] for k, v in world.messages().items()} == {"wamid.b1": world.b.id, "wamid.k1": broken.id}
