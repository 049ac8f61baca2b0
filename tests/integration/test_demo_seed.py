"""The demo's seed and generated history import cleanly through the real services, twice."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, func, select

from switchboard.cli.demo import DEMO_USERS, SANDBOX_WABA_ID, import_history, known_customers, seed
from switchboard.db.schema import Conversation, ConversationEvent, Message, User
from switchboard.services.channels import channel_credentials, set_channel_credentials
from switchboard.settings import get_settings
from switchboard.types import Actor
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


def test_the_sandbox_channel_lists_templates_and_the_sandbox_knows_recent_customers(
        settings_env: str, engine: Engine, tmp_path: Path) -> None:
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    channel = int(seed(settings, engine)["channel_id"])
    key = settings.secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = uow.session.execute(select(User.organization_id)).scalars().first()
        assert org is not None
        system = Actor.system(org)
        creds = channel_credentials(uow, system, channel, key)
        assert creds["waba_id"] == SANDBOX_WABA_ID
        set_channel_credentials(uow, system, channel, key, {k: v for k, v in creds.items() if k != "waba_id"})
        uow.commit()
    seed(settings, engine)  # a demo home from before templates: the waba_id is added
    with UnitOfWork(engine) as uow:
        assert channel_credentials(uow, system, channel, key)["waba_id"] == SANDBOX_WABA_ID
    import_history(settings, engine)
    known = json.loads(known_customers(engine, channel, tmp_path / "known.json").read_text())
    assert all(phone.isdigit() and isinstance(at, float) for phone, at in known.items())
