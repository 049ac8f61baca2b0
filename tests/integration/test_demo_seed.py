"""The demo's seed and generated history import cleanly through the real services, twice."""

from __future__ import annotations

import collections
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from switchboard.cli.demo import DEMO_USERS, SANDBOX_WABA_ID, demo_home, import_history, known_customers, seed
from switchboard.db.schema import Channel, ChannelPermission, Conversation, ConversationEvent, Message, User
from switchboard.services.channels import channel_credentials, set_channel_credentials
from switchboard.settings import Settings, get_settings
from switchboard.types import Actor
from switchboard.uow import UnitOfWork
from tests.helpers import assert_rows_agree_with_their_conversation


def test_seed_and_history(settings_env: str, engine: Engine, tmp_path: Path) -> None:
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    info = seed(settings, engine)
    assert "/webhooks/sandbox/" in info["webhook_url"]
    assert "/webhooks/twilio/" in info["sms_webhook_url"] and info["sms_auth_token"]
    assert seed(settings, engine)["webhook_url"] == info["webhook_url"]  # idempotent
    summary = import_history(settings, engine)
    assert summary and "events replayed" in summary
    assert import_history(settings, engine) is None  # once
    with UnitOfWork(engine) as uow:
        s = uow.session
        users = s.execute(select(func.count()).select_from(User)).scalar_one()
        per_channel = dict(s.execute(select(Channel.key, func.count(Conversation.id))
                                     .join(Conversation, Conversation.channel_id == Channel.id)
                                     .group_by(Channel.key)).tuples().all())
        status = dict(s.execute(select(Channel.key, Channel.status)).tuples().all())
        msgs = s.execute(select(func.count()).select_from(Message)).scalar_one()
        sms_senders = set(s.execute(select(User.email).join(ChannelPermission, ChannelPermission.user_id == User.id)
                                    .where(ChannelPermission.channel_id == int(info["sms_channel_id"]),
                                           ChannelPermission.can_send)).scalars())
        types = set(s.execute(select(ConversationEvent.type).distinct()).scalars())
        first, last = s.execute(select(func.min(Message.sent_at), func.max(Message.sent_at))).one()
        open_ = s.execute(
            select(func.count()).select_from(Conversation).where(Conversation.status != "COMPLETED")).scalar_one()
        handed_over = collections.Counter(s.execute(
            select(User.email).join(ConversationEvent, ConversationEvent.data["from_user_id"].as_integer() == User.id)
            .where(ConversationEvent.type.in_(["REASSIGNED", "RELEASED"]))).scalars())
    assert users == len(DEMO_USERS) >= 6
    assert sum(r == "agent" for _, _, r in DEMO_USERS) >= 4
    assert sms_senders == {e for e, _, r in DEMO_USERS if r == "agent"}  # agents answer the SMS customers
    # every demo channel has a month of conversations; the history-only ones are paused
    assert set(per_channel) == {"sandbox", "messenger", "instagram", "telegram"}  # SMS: live customers only
    assert all(n >= 30 for n in per_channel.values()), per_channel
    assert status == {"sandbox": "active", "sms": "active", "messenger": "paused", "instagram": "paused",
                      "telegram": "paused"}
    assert msgs > 1200 and open_ <= 40
    assert timedelta(days=29) <= last - first <= timedelta(days=31)
    assert {"CREATED", "ACCEPTED", "RELEASED", "COMPLETED", "REOPENED", "REASSIGNED", "MESSAGE_SENT",
            "MESSAGE_READ"} <= types, types
    assert handed_over.most_common(1)[0][0] == "dave@demo.local"  # the agent who hands over a lot
    assert_rows_agree_with_their_conversation(engine)

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
    import_history(settings, engine, days=2)
    known = json.loads(known_customers(engine, channel, tmp_path / "known.json").read_text())
    assert all(phone.isdigit() and isinstance(at, float) for phone, at in known.items())


def test_a_fresh_demo_home_gets_a_new_key_file_the_next_start_reads(settings_env: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def start(fresh: bool = False) -> tuple[Settings, bool]:  # each start is a new process: no key in the env
        monkeypatch.delenv("SWITCHBOARD_SECRET_KEY", raising=False)  # restored after the test
        get_settings.cache_clear()
        return demo_home(fresh=fresh)

    first, created = start()
    assert created and (first.home / "secret.key").read_text().strip() == first.switchboard_secret_key
    again, created = start()
    assert not created and again.switchboard_secret_key == first.switchboard_secret_key
    fresh, created = start(fresh=True)  # the home (and its key file) deleted: a new key, written down
    assert created and fresh.switchboard_secret_key != first.switchboard_secret_key
    assert (fresh.home / "secret.key").read_text().strip() == fresh.switchboard_secret_key
    get_settings.cache_clear()
