"""The demo's seed and generated history import cleanly through the real services, twice."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func, select

from switchboard.cli.demo import DEMO_USERS, import_history, seed
from switchboard.db.schema import Conversation, ConversationEvent, Message, User
from switchboard.settings import get_settings
from switchboard.uow import UnitOfWork


def test_seed_and_history(settings_env: str, engine: Engine, tmp_path: Path) -> None:
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    info = seed(settings, engine)
    assert "/webhooks/sandbox/" in info["webhook_url"]
    assert seed(settings, engine)["webhook_url"] == info["webhook_url"]  # idempotent
    summary = import_history(settings, engine)
    assert summary and "events replayed" in summary
    assert import_history(settings, engine) is None  # once
    with UnitOfWork(engine) as uow:
        users = uow.session.execute(select(func.count()).select_from(User)).scalar_one()
        convs = uow.session.execute(select(func.count()).select_from(Conversation)).scalar_one()
        msgs = uow.session.execute(select(func.count()).select_from(Message)).scalar_one()
        types = set(uow.session.execute(select(ConversationEvent.type).distinct()).scalars())
        open_ = uow.session.execute(
            select(func.count()).select_from(Conversation).where(Conversation.status != "COMPLETED")).scalar_one()
    assert users == len(DEMO_USERS)
    assert convs > 50 and msgs > 150 and open_ <= 5  # last night's may still wait
    assert {"CREATED", "ACCEPTED", "COMPLETED", "REOPENED", "REASSIGNED", "MESSAGE_READ"} <= types
