"""Login state machine and incremental sync over the faithful fake gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import RateLimited
from connectors.telegram.fake import FakeTelegramGateway, FakeTelegramWorld
from connectors.telegram.gateway import PeerRef
from connectors.telegram.login import LoginError, LoginState, start_login, submit_code, submit_password
from connectors.telegram.sync import ChatCursor, SyncStats, chat_scope, sync_batches
from switchboard.types import InboundMessage

PHONE = "+15550001111"


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t


def world_with_account(password: str | None = None) -> tuple[FakeTelegramWorld, Clock]:
    clock = Clock()
    world = FakeTelegramWorld(now=clock)
    world.add_account(PHONE, password=password, password_hint="pet" if password else None, login_code="24680")
    return world, clock


def authorized(world: FakeTelegramWorld) -> FakeTelegramGateway:
    gw = FakeTelegramGateway(world)
    state = submit_code(gw, start_login(gw, PHONE), "24680")
    return FakeTelegramGateway(world, state.session)


# --- login -------------------------------------------------------------------------------------


def test_login_runs_across_reruns_from_a_serialized_state() -> None:
    world, _ = world_with_account()
    state = start_login(FakeTelegramGateway(world), " +1 (555) 000-1111 ")
    assert state.step == "code" and state.phone == PHONE and state.session.startswith("fake:")
    restored = LoginState.from_dict(state.to_dict())
    done = submit_code(FakeTelegramGateway(world, restored.session), restored, "24 680")
    assert done.step == "authorized" and done.user_name == "Support"
    assert FakeTelegramGateway(world, done.session).me() is not None


def test_login_with_two_step_password() -> None:
    world, _ = world_with_account(password="hunter2")
    state = start_login(FakeTelegramGateway(world), PHONE)
    state = submit_code(FakeTelegramGateway(world, state.session), state, "24680")
    assert state.step == "password" and state.password_hint == "pet"
    with pytest.raises(LoginError, match=r"wrong two-step verification password \(hint: pet\)"):
        submit_password(FakeTelegramGateway(world, state.session), state, "hunter3")
    done = submit_password(FakeTelegramGateway(world, state.session), state, "hunter2")
    assert done.step == "authorized"


def test_login_errors_are_clear() -> None:
    world, clock = world_with_account()
    with pytest.raises(LoginError, match="not a phone number"):
        start_login(FakeTelegramGateway(world), "call me")
    with pytest.raises(LoginError, match="does not accept"):
        start_login(FakeTelegramGateway(world), "+4915112345678")
    state = start_login(FakeTelegramGateway(world), PHONE)
    with pytest.raises(LoginError, match="wrong code"):
        submit_code(FakeTelegramGateway(world, state.session), state, "11111")
    with pytest.raises(LoginError, match="digits"):
        submit_code(FakeTelegramGateway(world, state.session), state, "abc")
    # the session was not persisted: a new auth key, the code is void
    with pytest.raises(LoginError, match="expired") as lost:
        submit_code(FakeTelegramGateway(world), state, "24680")
    assert lost.value.restart
    clock.t += timedelta(minutes=6)
    with pytest.raises(LoginError, match="expired") as late:
        submit_code(FakeTelegramGateway(world, state.session), state, "24680")
    assert late.value.restart
    with pytest.raises(LoginError, match="no password is needed"):
        submit_password(FakeTelegramGateway(world, state.session), state, "x")
    world.inject_flood_wait("send_code", 180)
    with pytest.raises(LoginError, match="wait 180 seconds") as flood:
        start_login(FakeTelegramGateway(world), PHONE)
    assert flood.value.retry_after == 180


# --- sync --------------------------------------------------------------------------------------


def test_incremental_sync_fetches_only_changed_chats_and_resumes() -> None:
    world, clock = world_with_account()
    gw = authorized(world)
    ada = world.add_private_chat(PHONE, "Ada", username="ada")
    bob = world.add_private_chat(PHONE, "Bob")
    shop = world.add_channel(PHONE, "Shop news")
    for i in range(5):
        clock.t += timedelta(minutes=1)
        world.receive(PHONE, ada, f"ada {i}", notify=False)
    world.receive(PHONE, bob, "bob 0", notify=False)
    world.send_native(PHONE, bob, "hi bob")
    world.receive(PHONE, shop, "news 1", notify=False)

    cursors: dict[str, ChatCursor] = {}
    stats = SyncStats()
    batches = list(sync_batches(gw, cursors, batch_size=2, stats=stats))
    for b in batches:
        cursors[b.scope] = ChatCursor.from_json(b.cursor.to_json())
    keys = [i.provider_message_id for b in batches for i in b.items if isinstance(i, InboundMessage)]
    assert len(keys) == len(set(keys)) == 8
    assert stats.chats_fetched == 3 and stats.messages == 8
    # ids are per account for private chats, per channel for channels
    assert f"{ada.marked_id}:1" in keys and f"{bob.marked_id}:6" in keys and f"{shop.marked_id}:1" in keys
    echo = next(i for b in batches for i in b.items
                if isinstance(i, InboundMessage) and i.body == "hi bob")
    assert echo.direction == "OUTBOUND"
    assert cursors[chat_scope(ada)].last_message_id == 5 and cursors[chat_scope(ada)].top_message_id == 5
    assert cursors[chat_scope(ada)].peer.access_hash == ada.access_hash

    # nothing changed: only the dialog list is fetched
    world.calls.clear()
    assert list(sync_batches(gw, cursors)) == []
    assert [c[0] for c in world.calls] == ["iter_dialogs"]

    # one new message in one chat: only that chat is fetched, from its last stored id
    world.receive(PHONE, ada, "ada again", notify=False)
    world.calls.clear()
    [batch] = list(sync_batches(gw, cursors))
    assert [i.provider_message_id for i in batch.items] == [f"{ada.marked_id}:8"]  # type: ignore[union-attr]
    assert ("iter_history", (ada.marked_id, 5, 100)) in world.calls


def test_sync_limit_per_run_resumes_next_run() -> None:
    world, _ = world_with_account()
    gw = authorized(world)
    ada = world.add_private_chat(PHONE, "Ada")
    for i in range(7):
        world.receive(PHONE, ada, f"m{i}", notify=False)
    cursors: dict[str, ChatCursor] = {}
    first = list(sync_batches(gw, cursors, batch_size=3, max_messages_per_chat=4))
    assert [len(b.items) for b in first] == [3, 1]
    cursors[first[-1].scope] = first[-1].cursor
    assert first[-1].cursor.last_message_id == 4 and first[-1].cursor.top_message_id == 0
    second = list(sync_batches(gw, cursors, batch_size=3))
    assert [len(b.items) for b in second] == [3]
    assert second[-1].cursor.last_message_id == 7 and second[-1].cursor.top_message_id == 7


def test_flood_wait_short_is_slept_long_is_reported() -> None:
    world, _ = world_with_account()
    gw = authorized(world)
    ada = world.add_private_chat(PHONE, "Ada")
    world.receive(PHONE, ada, "hi", notify=False)
    slept: list[float] = []
    world.inject_flood_wait("iter_history", 5)
    stats = SyncStats()
    batches = list(sync_batches(gw, {}, sleep=slept.append, flood_sleep_threshold=10, stats=stats))
    assert slept == [5.0] and stats.flood_waits == [5] and len(batches) == 1

    world.inject_flood_wait("iter_dialogs", 3600)
    with pytest.raises(RateLimited) as info:
        list(sync_batches(gw, {}, sleep=slept.append, flood_sleep_threshold=10))
    assert info.value.retry_after == 3600 and "3600" in str(info.value)


def test_fake_refuses_wrong_access_hash_and_unauthorized_sessions() -> None:
    from connectors.telegram.gateway import NotAuthorized, UnknownPeer

    world, _ = world_with_account()
    gw = authorized(world)
    ada = world.add_private_chat(PHONE, "Ada")
    with pytest.raises(UnknownPeer):
        gw.iter_history(PeerRef("user", ada.peer_id, 1), 0, 10)
    with pytest.raises(NotAuthorized):
        FakeTelegramGateway(world, "fake:nope").iter_dialogs()


def test_connector_ports_for_the_outbox(tmp_path: Path) -> None:
    from connectors.base import MEDIA, SEND, WEBHOOKS, AuthenticationError, PermanentError, Unsupported
    from connectors.registry import get_connector, port, supports
    from connectors.telegram import TelegramConnector
    from switchboard.types import OutboundRequest

    with pytest.raises(AuthenticationError, match="api_id"):
        get_connector("telegram", external_id=None, credentials={})
    with pytest.raises(AuthenticationError, match="not connected"):
        get_connector("telegram", external_id=None, credentials={"api_id": 1, "api_hash": "h"})
    world, _ = world_with_account()
    gw = authorized(world)
    ada = world.add_private_chat(PHONE, "Ada")
    conn = TelegramConnector({"api_id": 1, "api_hash": "h", "session": gw.session_string()}, gateway=gw)
    assert supports("telegram", SEND) and supports("telegram", MEDIA) and not supports("telegram", WEBHOOKS)
    assert port(conn, SEND) is conn
    with pytest.raises(Unsupported, match="telegram channels have no webhooks"):
        port(conn, WEBHOOKS)  # no webhooks: inbound comes from the sync and the listener
    result = conn.send(OutboundRequest(recipient_id=str(ada.marked_id), body="hello",
                                       reply_to_provider_message_id=f"{ada.marked_id}:1"))
    assert result.provider_message_id == f"{ada.marked_id}:1"  # resolved without a stored peer
    with pytest.raises(PermanentError, match="not a Telegram chat id"):
        conn.send(OutboundRequest(recipient_id="ada", body="x"))
    with pytest.raises(PermanentError, match="local files"):
        from switchboard.types import AttachmentRef

        conn.send(OutboundRequest(recipient_id=str(ada.marked_id),
                                  attachments=(AttachmentRef(kind="image", url="https://x/y.png"),)))
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG fake")
    sent = conn.send(OutboundRequest(recipient_id=str(ada.marked_id), body="see attached",
                                     attachments=(AttachmentRef(kind="image", url=photo.as_uri()),)))
    stored = world.accounts[PHONE].chats[ada.marked_id].messages[-1]
    assert sent.provider_message_id == stored.key and stored.text == "see attached"
    assert stored.media is not None and stored.media.kind == "image" and stored.media.file_name == "photo.png"
    conn.close()
