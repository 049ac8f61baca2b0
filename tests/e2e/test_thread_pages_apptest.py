"""AppTest of the Outbox and Saved replies pages and of the reply box's saved replies, file uploader,
typing and read marks, and of the thread's live status, against a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from app.text import plain
from switchboard.auth.users import create_user
from switchboard.db.schema import Attachment, Conversation, Message, PlatformSignal, SavedReply
from switchboard.services.channels import create_channel, grant_channel_permission
from switchboard.services.conversations import accept
from switchboard.services.ingest import ingest_items
from switchboard.services.organizations import create_organization
from switchboard.services.outbox import enqueue_reply, record_failure, record_sent, record_unknown
from switchboard.services.saved_replies import create_saved_reply
from switchboard.settings import get_settings
from switchboard.types import Actor, ContactRef, InboundMessage
from switchboard.uow import UnitOfWork
from tests.helpers import lease, login_apptest

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _outbox() -> None:
    from app.views import outbox

    outbox.page()


def _saved() -> None:
    from app.views import saved_replies

    saved_replies.page()


def _inbox() -> None:
    from app.views import inbox

    inbox.page()


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    key = get_settings().secret_key_bytes()
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Thread Co")
        system = Actor.system(org)
        wa = create_channel(uow, system, key="wa", provider="whatsapp", name="WhatsApp", secret_key=key)
        users = {email: create_user(uow, org, email=email, name=name, role=role, secret_key=key,
                                    password="long enough password").user_id
                 for email, name, role in (("agent@t.test", "Alice", "agent"), ("boss@t.test", "Max", "manager"),
                                           ("root@t.test", "Ada", "admin"))}
        grant_channel_permission(uow, system, user_id=users["agent@t.test"], channel_id=wa.id, can_view=True,
                                 can_send=True)
        uow.commit()
    with UnitOfWork(engine) as uow:
        ingest_items(uow, channel_id=wa.id, items=[InboundMessage(
            provider_message_id="wamid.t1", contact=ContactRef("4917", display_name="Grace Hopper"),
            sent_at=datetime.now(UTC), body="Where is my order?")])
        uow.commit()
    with UnitOfWork(engine) as uow:
        conv = uow.session.execute(select(Conversation.id)).scalar_one()
        agent = Actor(users["agent@t.test"], org, "agent", "agent@t.test")
        accept(uow, agent, conv)
        uow.commit()
    return {"org": org, "users": users, "conversation_id": conv, "channel_id": wa.id, "agent": agent,
            "manager": Actor(users["boss@t.test"], org, "manager", "boss@t.test")}


def _text(at: AppTest) -> str:
    parts = [t.value for t in at.text] + [c.value for c in at.caption] + [str(e.value) for e in at.error]
    parts += [i.value for i in at.info] + [w.value for w in at.warning] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


def _table(at: AppTest) -> str:
    return "\n".join(d.value.to_string() for d in at.dataframe)


def _status(engine: Engine, message_id: int) -> tuple[str, str | None]:
    with UnitOfWork(engine) as uow:
        row = uow.session.execute(select(Message.status, Message.error_code).where(Message.id == message_id)).one()
        return row.status, row.error_code


@pytest.mark.usefixtures("app_env")
def test_outbox_page_filters_retries_and_cancels(engine: Engine, world: dict[str, Any]) -> None:
    conv, agent = world["conversation_id"], world["agent"]
    with UnitOfWork(engine) as uow:
        failed = enqueue_reply(uow, agent, conv, "first try", idempotency_key="o1").id
        pending = enqueue_reply(uow, agent, conv, "still waiting", idempotency_key="o2").id
        uow.commit()
    with UnitOfWork(engine) as uow:
        record_failure(uow, failed, token=lease(uow, failed), error_code="131026", error_message="Message undeliverable", retryable=False)
        uow.commit()

    at = login_apptest(AppTest.from_function(_outbox, default_timeout=30), engine, world["users"]["boss@t.test"])
    at.run()
    assert not at.exception, at.exception
    table = _table(at)
    assert "first try" in table and "still waiting" in table and "Message undeliverable" in table
    assert "Alice" in table and "WhatsApp (whatsapp)" not in table  # the channel's name, the agent's name

    at.selectbox(key="outbox_status").set_value("DEAD_LETTER").run()
    assert "first try" in _table(at) and "still waiting" not in _table(at)
    at.button(key="outbox_retry").click().run()
    assert not at.exception, at.exception
    assert f"Message {failed} queued again." in _text(at)
    assert _status(engine, failed) == ("PENDING", "131026")

    at.selectbox(key="outbox_status").set_value("PENDING").run()
    at.selectbox(key="outbox_cancel_pick").set_value(pending).run()
    at.button(key="outbox_cancel").click().run()
    assert f"Message {pending} will not be sent." in _text(at)
    assert _status(engine, pending) == ("FAILED", "cancelled")
    at.selectbox(key="outbox_status").set_value("FAILED").run()
    assert "cancelled by boss@t.test" in _table(at)

    at.selectbox(key="outbox_channel").set_value(world["channel_id"]).run()
    assert "still waiting" in _table(at)
    at.selectbox(key="outbox_status").set_value("READ").run()
    assert "No outbound messages match." in _text(at)

    at = login_apptest(AppTest.from_function(_outbox, default_timeout=30), engine, world["users"]["agent@t.test"])
    at.run()
    assert any("admins and managers may manage the outbox" in str(e.value) for e in at.error)
    assert not at.dataframe

@pytest.mark.usefixtures("app_env")
def test_outbox_page_settles_a_message_that_may_have_been_sent(engine: Engine, world: dict[str, Any]) -> None:
    conv, agent = world["conversation_id"], world["agent"]
    with UnitOfWork(engine) as uow:
        lost = enqueue_reply(uow, agent, conv, "did it go?", idempotency_key="u1").id
        again = enqueue_reply(uow, agent, conv, "and this one?", idempotency_key="u2").id
        uow.commit()
    for mid in (lost, again):
        with UnitOfWork(engine) as uow:
            assert record_unknown(uow, mid, token=lease(uow, mid), error_code="timeout",
                                  error_message="no answer within 10 s")
            uow.commit()
    at = login_apptest(AppTest.from_function(_outbox, default_timeout=30), engine, world["users"]["boss@t.test"])
    at.run()
    assert not at.exception, at.exception
    assert "may have been sent" in _table(at) and any("2 messages on this page may have been sent" in w.value
                                                      for w in at.warning)
    at.selectbox(key="outbox_unknown_pick").set_value(lost).run()
    at.button(key="outbox_mark_sent").click().run()
    assert not at.exception, at.exception
    assert _status(engine, lost)[0] == "SENT"
    at.selectbox(key="outbox_unknown_pick").set_value(again).run()
    at.button(key="outbox_resend").click().run()
    assert _status(engine, again)[0] == "PENDING"
    assert not at.warning



@pytest.mark.usefixtures("app_env")
def test_saved_replies_page_adds_changes_and_deletes(engine: Engine, world: dict[str, Any]) -> None:
    at = login_apptest(AppTest.from_function(_saved, default_timeout=30), engine, world["users"]["boss@t.test"])
    at.run()
    assert not at.exception, at.exception
    assert "No saved replies yet" in _text(at)
    at.text_input(key="new_reply_code").input("thanks")
    at.text_input(key="new_reply_title").input("Thank you")
    at.text_area(key="new_reply_body").input("Thanks {fist_name}!")
    at.button[0].click().run()
    assert "unknown placeholder {fist_name}" in _text(at)
    at.text_area(key="new_reply_body").input("Thanks {first_name}!")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "Saved reply /thanks added." in _text(at) and "Thanks {first_name}!" in _table(at)

    with UnitOfWork(engine) as uow:
        rid = uow.session.execute(select(SavedReply.id)).scalar_one()
    at.text_input(key=f"edit_code_{rid}").input("ty")
    next(b for b in at.button if b.label == "Save").click().run()
    assert "Saved reply /ty saved." in _text(at) and "/ty" in _table(at)
    next(b for b in at.button if b.label == "Delete").click().run()
    assert "Saved reply /ty deleted." in _text(at) and "No saved replies yet" in _text(at)

    at = login_apptest(AppTest.from_function(_saved, default_timeout=30), engine, world["users"]["agent@t.test"])
    at.run()
    assert any("admins and managers may manage saved replies" in str(e.value) for e in at.error)


def _open_thread(engine: Engine, world: dict[str, Any]) -> AppTest:
    at = login_apptest(AppTest.from_function(_inbox, default_timeout=30), engine, world["users"]["agent@t.test"])
    at.session_state["selected_conversation"] = world["conversation_id"]
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.usefixtures("app_env")
def test_reply_box_inserts_a_saved_reply_with_the_customers_name(engine: Engine, world: dict[str, Any]) -> None:
    with UnitOfWork(engine) as uow:
        rid = create_saved_reply(uow, world["manager"], code="hello", title="Greeting",
                                 body="Hi {first_name}, {agent_name} here.").id
        uow.commit()
    cid = world["conversation_id"]
    at = _open_thread(engine, world)
    at.text_area(key=f"draft_{cid}").input("Sorry for the wait.")
    at.selectbox(key=f"saved_reply_{cid}").set_value(rid)
    at.button(key=f"insert_saved_{cid}").click().run()
    assert not at.exception, at.exception
    assert at.text_area(key=f"draft_{cid}").value == "Sorry for the wait.\nHi Grace, Alice here."
    at.button(key=f"send_{cid}").click().run()
    with UnitOfWork(engine) as uow:
        bodies = list(uow.session.execute(select(Message.body).where(Message.direction == "OUTBOUND")).scalars())
    assert bodies == ["Sorry for the wait.\nHi Grace, Alice here."]


@pytest.mark.usefixtures("app_env")
def test_reply_box_uploads_a_file_checked_against_the_platforms_limits(
        engine: Engine, world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path))
    get_settings.cache_clear()
    cid = world["conversation_id"]
    at = _open_thread(engine, world)
    uploader = at.file_uploader[0]
    assert set(uploader.allowed_type) >= {".png", ".jpg", ".pdf"}  # the browser refuses other types
    assert "WhatsApp: images (JPEG or PNG) up to 5.0 MB" in _text(at)
    uploader.set_value(("huge.png", b"x" * (5 * 1024 * 1024 + 1), "image/png")).run()
    assert "huge.png is 5.0 MB; WhatsApp sends images (JPEG or PNG) up to 5.0 MB" in _text(at)
    assert at.button(key=f"send_file_{cid}").disabled

    at.file_uploader[0].set_value(("receipt.png", PNG, "image/png")).run()
    at.text_input(key=f"file_caption_{cid}").input("Your receipt")
    assert not at.button(key=f"send_file_{cid}").disabled
    at.button(key=f"send_file_{cid}").click().run()
    assert not at.exception, at.exception
    with UnitOfWork(engine) as uow:
        msg = uow.session.execute(select(Message).where(Message.direction == "OUTBOUND")).scalar_one()
        att = uow.session.execute(select(Attachment).where(Attachment.message_id == msg.id)).scalar_one()
        assert (msg.content_type, msg.body, msg.status) == ("image", "Your receipt", "PENDING")
        assert Path(att.local_path or "").read_bytes() == PNG
        assert Path(att.local_path or "").is_relative_to(tmp_path / "media")
    assert "Your receipt" in _text(at) and "🕓 sending" in _text(at)  # in the thread, with its ticks
    labels = [str(getattr(b, "label", "")) for b in at.get("download_button")]
    assert plain("📎 image: receipt.png") in labels  # a file name is never Markdown: escaped


@pytest.mark.usefixtures("app_env")
def test_opening_marks_read_and_composing_shows_typing(engine: Engine, world: dict[str, Any]) -> None:
    cid = world["conversation_id"]
    at = _open_thread(engine, world)
    at.text_area(key=f"draft_{cid}").input("Let me check").run()
    assert not at.exception, at.exception
    with UnitOfWork(engine) as uow:
        signals = uow.session.execute(select(PlatformSignal.kind, PlatformSignal.provider_message_id,
                                             PlatformSignal.status).order_by(PlatformSignal.id)).all()
    assert [tuple(s) for s in signals] == [("read", "wamid.t1", "PENDING"), ("typing", "wamid.t1", "PENDING")]


@pytest.mark.usefixtures("app_env")
def test_the_open_thread_shows_a_new_status_without_reloading(engine: Engine, world: dict[str, Any]) -> None:
    from app.views import inbox

    # the messages fragment asks "anything changed?" every LIVE_SECONDS: a stored status shows within 2 s
    assert inbox.LIVE_SECONDS <= 1
    with UnitOfWork(engine) as uow:
        mid = enqueue_reply(uow, world["agent"], world["conversation_id"], "Shipped today", idempotency_key="s1").id
        uow.commit()
    at = _open_thread(engine, world)
    assert "🕓 sending" in _text(at)
    with UnitOfWork(engine) as uow:
        record_sent(uow, mid, token=lease(uow, mid), provider_message_id="wamid.s1", sent_at=datetime.now(UTC))
        uow.commit()
    at.run()  # what the fragment's timer does
    assert "✓ sent" in _text(at) and "🕓 sending" not in _text(at)


def _channels() -> None:
    from app.views import admin_channels

    admin_channels.page()


@pytest.mark.usefixtures("app_env")
def test_admin_turns_read_receipts_off_for_a_channel(engine: Engine, world: dict[str, Any]) -> None:
    from switchboard.db.schema import Channel

    at = login_apptest(AppTest.from_function(_channels, default_timeout=30), engine, world["users"]["root@t.test"])
    at.run()
    assert not at.exception, at.exception
    assert "last 24 h: 0 sent, 0 failed" in _text(at)
    at.toggle(key=f"read_receipts_{world['channel_id']}").set_value(False).run()
    assert not at.exception, at.exception
    with UnitOfWork(engine) as uow:
        assert uow.session.execute(select(Channel.send_read_receipts)).scalar_one() is False
    at = _open_thread(engine, world)  # opening the conversation queues no read mark now
    with UnitOfWork(engine) as uow:
        assert uow.session.execute(select(PlatformSignal.id)).first() is None


@pytest.mark.usefixtures("app_env")
def test_a_long_thread_loads_older_pages_contiguously(engine: Engine, world: dict[str, Any]) -> None:
    from app.views import inbox

    start = datetime(2026, 1, 1, tzinfo=UTC)
    with UnitOfWork(engine) as uow:  # 400 older messages before the first one
        ingest_items(uow, channel_id=world["channel_id"], items=[InboundMessage(
            provider_message_id=f"wamid.old{i}", contact=ContactRef("4917", display_name="Grace Hopper"),
            sent_at=start + timedelta(minutes=i), body=f"old {i}") for i in range(400)])
        uow.commit()

    def shown(at: AppTest) -> list[str]:
        return [str(t.value) for t in at.text if str(t.value).startswith("old ") or t.value == "Where is my order?"]

    at = _open_thread(engine, world)
    assert shown(at) == [f"old {i}" for i in range(351, 400)] + ["Where is my order?"]  # the newest 50
    clicks = 0
    while at.button(key=f"older_{world['conversation_id']}").value is not None and clicks < 10:
        at.button(key=f"older_{world['conversation_id']}").click().run()
        assert not at.exception, at.exception
        clicks += 1
        assert len(shown(at)) == min(50 + clicks * inbox.OLDER_PAGE, 401)
        if len(shown(at)) == 401:
            break
    assert clicks == 4 and shown(at) == [f"old {i}" for i in range(400)] + ["Where is my order?"]
    assert not [b for b in at.button if b.key == f"older_{world['conversation_id']}"]  # nothing older

    # a new message while older pages are open: still every message once, in order
    with UnitOfWork(engine) as uow:
        ingest_items(uow, channel_id=world["channel_id"], items=[InboundMessage(
            provider_message_id="wamid.new", contact=ContactRef("4917", display_name="Grace Hopper"),
            sent_at=datetime.now(UTC) + timedelta(seconds=1), body="old 400")])
        uow.commit()
    at.run()
    assert not at.exception, at.exception
    assert shown(at) == [f"old {i}" for i in range(400)] + ["Where is my order?", "old 400"]
