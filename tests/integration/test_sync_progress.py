"""Progress of the history syncs: reported per batch to the callback, stored for Channels & health."""

from __future__ import annotations

from sqlalchemy import Engine, select

from connectors.telegram.fake import FakeTelegramWorld
from switchboard.db.schema import Channel
from switchboard.services.sync_progress import Progress, progress_overview
from switchboard.settings import get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from switchboard.workflows.meta_history import sync_meta_channel
from switchboard.workflows.telegram import sync_telegram_channel
from tests.fakes.graph import FakeGraph
from tests.fakes.server import run_asgi
from tests.integration.telegram.test_telegram_pipeline import PHONE, _key, connected_channel, factory
from tests.integration.telegram.test_telegram_pipeline import world as world  # the fixture
from tests.integration.test_meta_sync import messenger_channel


def _row(p: Progress) -> tuple[int, int | None, int, int | None, bool]:
    return p.chats_done, p.chats_total, p.messages_done, p.messages_total, p.finished


def test_telegram_sync_reports_progress_per_batch(engine: Engine, world: FakeTelegramWorld) -> None:
    channel_id = connected_channel(engine, world)
    ada = world.add_private_chat(PHONE, "Ada", username="ada")
    grp = world.add_group(PHONE, "Wholesale")
    for i in range(250):
        world.receive(PHONE, ada, f"ada {i}", notify=False)
    world.receive(PHONE, grp, "group hello", notify=False)
    seen: list[Progress] = []

    sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key(), on_progress=seen.append)

    # the group's one message, then Ada's 250 in pages of 100 (her chat done with its last page), the end
    assert [_row(p) for p in seen] == [(1, 2, 1, None, False), (1, 2, 101, None, False), (1, 2, 201, None, False),
                                       (2, 2, 251, None, False), (2, 2, 251, None, True)]
    assert seen[1].sentence() == "1 of 2 chats, 101 messages (running)" and seen[1].fraction() == 0.5
    assert seen[-1].fraction() == 1.0

    with UnitOfWork(engine) as uow:
        org = int(uow.session.execute(select(Channel.organization_id)).scalar_one())
        shown = progress_overview(uow, Actor.system(org))
    assert [(v.job, v.channel_name, _row(v.progress)) for v in shown] == [
        ("telegram-sync", "Telegram", (2, 2, 251, None, True))]
    assert shown[0].finished_at is not None and shown[0].label == "Telegram chats and history"

    # the next run (nothing new) starts over and reports the dialogs skipped as done
    seen.clear()
    sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key(), on_progress=seen.append)
    assert [_row(p) for p in seen] == [(2, 2, 0, None, True)]


def test_a_failing_callback_never_stops_the_sync(engine: Engine, world: FakeTelegramWorld) -> None:
    channel_id = connected_channel(engine, world)
    ada = world.add_private_chat(PHONE, "Ada", username="ada")
    world.receive(PHONE, ada, "hello", notify=False)

    def broken(p: Progress) -> None:
        raise RuntimeError("the Prefect API is down")

    report = sync_telegram_channel(engine, channel_id, factory(world), secret_key=_key(), on_progress=broken)
    assert report.messages_created == 1


def test_meta_history_reports_people_and_messages_per_page(engine: Engine) -> None:
    graph = FakeGraph(token="tok", account_id="page1")
    for i in range(3):
        graph.add_message(f"c{i}", 1_763_700_000.0 + i * 100, f"hello {i}", name=f"Cust {i}")
    seen: list[Progress] = []
    with run_asgi(graph.app) as base:
        graph.base_url = base
        channel_id = messenger_channel(engine, base)
        connectors = ConnectorCache(engine, get_settings().secret_key_bytes())
        try:
            report = sync_meta_channel(engine, channel_id, connectors, page_size=2, on_progress=seen.append)
        finally:
            connectors.close()
    assert report.complete and len(seen) == report.rounds + 1
    assert _row(seen[-1]) == (3, None, 3, None, True) and seen[-1].sentence() == "3 chats, 3 messages (finished)"
    assert all(not p.finished and p.fraction() is None for p in seen[:-1])
    with UnitOfWork(engine) as uow:
        org = int(uow.session.execute(select(Channel.organization_id)).scalar_one())
        assert [_row(v.progress) for v in progress_overview(uow, Actor.system(org))] == [(3, None, 3, None, True)]
