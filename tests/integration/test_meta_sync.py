"""Messenger/Instagram history pull through the real connector against a fake Graph API over HTTP."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from switchboard.db.schema import Conversation, Message
from switchboard.services.channels import create_channel, get_channel
from switchboard.services.cursors import get_cursor
from switchboard.services.organizations import create_organization
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.meta_history import SCOPE, sync_meta_channel
from tests.fakes.graph import FakeGraph
from tests.fakes.server import run_asgi

T0 = 1_763_700_000.0


def messenger_channel(engine: Engine, base: str, org_name: str = "Meta") -> int:
    """A Messenger channel of a new organization whose Graph API is the fake at ``base``."""
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, org_name)
        ch = create_channel(uow, Actor.system(org), key="fb", provider="messenger", name="Page",
                            secret_key=get_settings().secret_key_bytes(), external_id="page1",
                            credentials={"page_access_token": "tok", "app_secret": "s", "page_id": "page1",
                                         "api_base_url": base})
        uow.commit()
    return ch.id


def test_history_pull_is_incremental_and_idempotent(engine: Engine) -> None:
    key = get_settings().secret_key_bytes()
    graph = FakeGraph(token="tok", account_id="page1")
    for i in range(4):
        graph.add_message(f"c{i}", T0 + i * 100, f"hello {i}", name=f"Cust {i}")
        graph.add_message(f"c{i}", T0 + i * 100 + 10, f"answer {i}", outbound=True, name=f"Cust {i}")
    with run_asgi(graph.app) as base:
        graph.base_url = base
        ch = messenger_channel(engine, base)
        connectors = ConnectorCache(engine, key)
        try:
            first = sync_meta_channel(engine, ch, connectors, page_size=2)
            assert first.complete and first.messages_created == 8 and first.error is None
            again = sync_meta_channel(engine, ch, connectors, page_size=2)
            assert again.messages_created == 0  # boundary re-reads are deduplicated
            graph.add_message("c1", T0 + 5000, "one more question", name="Cust 1")
            later = sync_meta_channel(engine, ch, connectors, page_size=2)
            assert later.messages_created == 1
        finally:
            connectors.close()
        with UnitOfWork(engine) as uow:
            n_msgs = uow.session.execute(select(func.count()).select_from(Message)).scalar_one()
            n_convs = uow.session.execute(select(func.count()).select_from(Conversation)).scalar_one()
            outbound = uow.session.execute(select(func.count()).select_from(Message)
                                           .where(Message.direction == "OUTBOUND")).scalar_one()
            assert get_cursor(uow, ch, SCOPE)
            assert get_channel(uow, ch).last_error is None
        assert (n_msgs, n_convs, outbound) == (9, 4, 4)


def test_history_pull_failure_is_recorded_on_the_channel(engine: Engine) -> None:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Meta down")
        ch = create_channel(uow, Actor.system(org), key="ig", provider="instagram", name="IG", secret_key=key, external_id="ig1",
                            credentials={"page_access_token": "tok", "app_secret": "s", "ig_user_id": "ig1",
                                         "api_base_url": "http://127.0.0.1:9"})
        uow.commit()
    connectors = ConnectorCache(engine, key)
    try:
        report = sync_meta_channel(engine, ch.id, connectors)
    finally:
        connectors.close()
    assert report.error and not report.complete
    with UnitOfWork(engine) as uow:
        assert "history pull failed" in (get_channel(uow, ch.id).last_error or "")
