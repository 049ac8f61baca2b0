"""Several worker processes drain one backlog of deliveries: each delivery processed once, every message
once, conversations' counters and latest-message times exact, statuses forward-only whatever the order."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select

from connectors.sandbox.payloads import encode_signed, inbound_message_body, status_body
from switchboard.db.schema import Contact, Conversation, ConversationEvent, Message, WebhookEvent
from switchboard.services import webhooks
from switchboard.services.channels import create_channel
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.inbound import process_webhooks_once

NUMBER = "100200300"
SECRET = "workers-secret"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def work(db_url: str) -> None:
    """One worker process: small batches, so that the workers interleave, until nothing is left."""
    engine = create_engine(db_url)
    connectors = ConnectorCache(engine, get_settings().secret_key_bytes())
    idle = 0
    while idle < 3:
        idle = 0 if process_webhooks_once(engine, connectors, limit=7).claimed else idle + 1
    connectors.close()
    engine.dispose()


def test_worker_processes_share_a_backlog_exactly(engine: Engine, db_url: str) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Workers")
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", secret_key=key, external_id=NUMBER,
                            credentials={"app_secret": SECRET, "access_token": "t", "phone_number_id": NUMBER})
        uow.commit()
    rnd = random.Random(7)
    contacts = [f"49151{i:06d}" for i in range(40)]
    # our replies, sent earlier from the phone app (echoes): the statuses below are for them
    sent = {f"wamid.out{i}": contacts[i % len(contacts)] for i in range(60)}
    with UnitOfWork(engine) as uow:
        ingest_items(uow, channel_id=ch.id, items=[
            InboundMessage(pmid, ContactRef(to), T0 - timedelta(hours=1), "earlier reply", direction="OUTBOUND",
                           author_kind="agent") for pmid, to in sent.items()])
        uow.commit()
    bodies = []
    inbound: dict[str, tuple[str, int]] = {}
    for i in range(300):
        who, at = rnd.choice(contacts), int((T0 + timedelta(seconds=rnd.randrange(3600))).timestamp())
        inbound[f"wamid.in{i}"] = (who, at)
        bodies.append(inbound_message_body(phone_number_id=NUMBER, display_phone_number="1", from_phone=who,
                                           name=None, wamid=f"wamid.in{i}", timestamp=at, text=f"message {i}"))
    for pmid, to in sent.items():  # every status of every reply, in any order
        for k, status in enumerate(("sent", "delivered", "read")):
            bodies.append(status_body(phone_number_id=NUMBER, display_phone_number="1", wamid=pmid, status=status,
                                      recipient_id=to, timestamp=int(T0.timestamp()) + k))
    bodies += rnd.sample(bodies[:300], 30)  # platform retries of messages
    rnd.shuffle(bodies)
    with UnitOfWork(engine) as uow:
        for body in bodies:
            raw, headers = encode_signed(body, SECRET)
            webhooks.store_event(uow, provider="whatsapp", channel_id=ch.id, body=raw, headers=headers)
        uow.commit()

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = f"from tests.integration.test_webhook_workers import work; work({db_url!r})"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env) for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]

    with UnitOfWork(engine) as uow:
        s = uow.session
        assert s.execute(select(WebhookEvent.status, WebhookEvent.attempts, func.count())
                         .group_by(WebhookEvent.status, WebhookEvent.attempts)).all() == [("PROCESSED", 1, len(bodies))]
        pmids = s.execute(select(Message.provider_message_id).where(Message.direction == "INBOUND")).scalars().all()
        assert sorted(str(p) for p in pmids) == sorted(inbound)  # every message once
        received = Counter(s.execute(select(ConversationEvent.message_id)
                                     .where(ConversationEvent.type == "MESSAGE_RECEIVED")).scalars())
        assert len(received) == len(inbound) and set(received.values()) == {1}
        per_contact: dict[str, list[int]] = {}
        for who, at in inbound.values():
            per_contact.setdefault(who, []).append(at)
        rows = s.execute(select(Contact.provider_contact_id, Conversation.unread_count, Conversation.last_inbound_at,
                                Conversation.last_message_at, Conversation.awaiting_reply, Conversation.cycle_number)
                         .join(Contact, Contact.id == Conversation.contact_id)).all()
        assert {r[0]: r[1:] for r in rows} == {
            who: (len(times), _at(max(times)), _at(max(times)), True, 1) for who, times in per_contact.items()}
        statuses = s.execute(select(Message.status, Message.delivered_at, Message.read_at)
                             .where(Message.direction == "OUTBOUND")).all()
        # a read applied before its delivered (another batch) also sets the delivery time; the late
        # delivered is then ignored: the status never goes back
        assert {(st, r) for st, _, r in statuses} == {("READ", T0 + timedelta(seconds=2))}
        assert {d for _, d, _ in statuses} <= {T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)}
        events = Counter(s.execute(select(ConversationEvent.type).where(ConversationEvent.type.in_(
            ("MESSAGE_DELIVERED", "MESSAGE_READ")))).scalars())
        # a delivered that arrives after the read is ignored, so up to one of each per reply
        assert events["MESSAGE_READ"] == len(sent) and events["MESSAGE_DELIVERED"] <= len(sent)
