"""AppTest: Channels & health shows how far each channel's history sync got."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from switchboard.services.sync_progress import Progress, record_progress
from switchboard.uow import UnitOfWork
from tests.e2e.test_thread_pages_apptest import _channels, _text
from tests.e2e.test_thread_pages_apptest import world as world  # the fixture (one WhatsApp channel)
from tests.helpers import login_apptest


@pytest.mark.usefixtures("app_env")
def test_channels_page_shows_sync_progress(engine: Engine, world: dict[str, Any]) -> None:
    at = login_apptest(AppTest.from_function(_channels, default_timeout=30), engine, world["users"]["root@t.test"])
    at.run()
    assert not at.exception, at.exception
    assert "History sync progress" not in [s.value for s in at.subheader]  # nothing synced yet

    started = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    with UnitOfWork(engine) as uow:
        record_progress(uow, Progress(world["channel_id"], "telegram-sync", started, chats_done=12, chats_total=40,
                                      messages_done=3200), now=started)
        uow.commit()
    at.run()
    assert not at.exception, at.exception
    assert "WhatsApp · Telegram chats and history: 12 of 40 chats, 3,200 messages (running)" in _text(at)
    assert len(at.get("progress")) == 1  # 12 of 40 chats: a bar while it runs
