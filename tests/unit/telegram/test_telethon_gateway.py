"""The real Telethon adapter end-to-end against an offline Telegram platform (no network)."""

from __future__ import annotations

import pytest

from connectors.base import RateLimited
from connectors.telegram import send_telegram
from connectors.telegram.gateway import CodeExpired, FloodWait, InvalidCode, InvalidPassword, PeerRef
from connectors.telegram.login import LoginError, LoginState, start_login, submit_code, submit_password
from connectors.telegram.sync import sync_batches
from connectors.telegram.telethon_gateway import TelethonGateway
from switchboard.types import InboundMessage, OutboundRequest
from tests.unit.telegram.offline_client import OfflineClient, OfflineTelegram


def gateway(platform: OfflineTelegram, session: str = "") -> TelethonGateway:
    return TelethonGateway(OfflineClient(platform, session))


def login(platform: OfflineTelegram) -> str:
    gw = gateway(platform)
    state = start_login(gw, platform.phone)
    gw.close()
    gw = gateway(platform, state.session)
    state = submit_code(gw, state, platform.code)
    if state.step == "password":
        state = submit_password(gw, state, platform.password or "")
    assert state.step == "authorized"
    gw.close()
    return state.session


def test_login_across_separate_gateways_with_persisted_session() -> None:
    platform = OfflineTelegram()
    gw = gateway(platform)
    state = start_login(gw, platform.phone)
    assert state.step == "code" and state.session and state.phone_code_hash
    gw.close()
    # the next "rerun": a brand-new client from the persisted session string
    gw2 = gateway(platform, LoginState.from_dict(state.to_dict()).session)
    with pytest.raises(LoginError, match="wrong code"):
        submit_code(gw2, state, "00000")
    done = submit_code(gw2, state, platform.code)
    assert done.step == "authorized" and done.user_id == 1001 and done.user_name == "Shop"
    me = gateway(platform, done.session).me()
    assert me is not None and me.id == 1001


def test_code_expires_when_the_session_was_not_kept() -> None:
    platform = OfflineTelegram()
    state = start_login(gateway(platform), platform.phone)
    fresh = gateway(platform)  # session lost: a new auth key
    with pytest.raises(CodeExpired):
        fresh.sign_in_code(platform.phone, platform.code, state.phone_code_hash or "")
    with pytest.raises(LoginError, match="expired") as info:
        submit_code(gateway(platform), state, platform.code)
    assert info.value.restart


def test_two_step_password_is_checked_with_real_srp() -> None:
    platform = OfflineTelegram(password="s3cret pass")
    gw = gateway(platform)
    state = submit_code(gw, start_login(gw, platform.phone), platform.code)
    assert state.step == "password" and state.password_hint == "our pet"
    gw2 = gateway(platform, state.session)
    with pytest.raises(InvalidPassword):
        gw2.sign_in_password("wrong")
    with pytest.raises(LoginError, match="hint: our pet"):
        submit_password(gw2, state, "wrong again")
    done = submit_password(gateway(platform, state.session), state, "s3cret pass")
    assert done.step == "authorized"


def test_invalid_code_error_and_flood_wait_on_send_code() -> None:
    platform = OfflineTelegram()
    gw = gateway(platform)
    state = start_login(gw, platform.phone)
    with pytest.raises(InvalidCode):
        gw.sign_in_code(platform.phone, "11111", state.phone_code_hash or "")
    platform.flood["SendCodeRequest"] = 420
    with pytest.raises(LoginError, match="wait 420 seconds") as info:
        start_login(gateway(platform), platform.phone)
    assert info.value.retry_after == 420


def test_dialogs_history_paging_and_send() -> None:
    platform = OfflineTelegram()
    ada = platform.add_user(5001, "Ada", username="ada", access_hash=9191)
    for i in range(250):
        platform.add_message(ada.id, f"m{i}", minutes=i)
    session = login(platform)
    gw = gateway(platform, session)
    dialogs = gw.iter_dialogs()
    assert [(d.peer, d.top_message_id, d.title) for d in dialogs] == [
        (PeerRef("user", 5001, 9191), 250, "Ada")]
    # Telethon's own reverse paging (pages of 100) over GetHistoryRequest
    page = gw.iter_history(dialogs[0].peer, 120, 1000)
    assert [m.id for m in page] == list(range(121, 251))
    assert page[0].text == "m120" and page[0].sender_id == 5001 and not page[0].out
    assert gw.iter_history(dialogs[0].peer, 0, 5)[-1].id == 5

    batches = list(sync_batches(gw, {}, batch_size=100))
    assert [len(b.items) for b in batches] == [100, 100, 50]
    first = batches[0].items[0]
    assert isinstance(first, InboundMessage)
    assert first.provider_message_id == "5001:1" and first.contact.display_name == "Ada"
    assert batches[-1].cursor.last_message_id == 250

    result = send_telegram(gw, OutboundRequest(recipient_id="5001", body="*not markdown*"),
                           peer=dialogs[0].peer)
    assert result.provider_message_id == "5001:251"
    assert platform.history[5001][-1].message == "*not markdown*"


def test_flood_wait_and_wrong_access_hash_are_translated() -> None:
    platform = OfflineTelegram()
    platform.add_user(5001, "Ada", access_hash=9191)
    platform.add_message(5001, "hi")
    gw = gateway(platform, login(platform))
    platform.flood["GetHistoryRequest"] = 30
    with pytest.raises(FloodWait) as info:
        gw.iter_history(PeerRef("user", 5001, 9191), 0, 10)
    assert info.value.seconds == 30 and info.value.retry_after == 30
    platform.flood["SendMessageRequest"] = 3600
    with pytest.raises(RateLimited, match="3600"):
        send_telegram(gw, OutboundRequest(recipient_id="5001", body="x"), peer=PeerRef("user", 5001, 9191))
    from connectors.telegram.gateway import UnknownPeer

    with pytest.raises(UnknownPeer):
        gw.iter_history(PeerRef("user", 5001, 1), 0, 10)


def test_not_logged_in_session_is_reported() -> None:
    from connectors.telegram.gateway import NotAuthorized

    platform = OfflineTelegram()
    gw = gateway(platform)
    assert gw.me() is None
    with pytest.raises(NotAuthorized, match="connect the account again"):
        gw.iter_dialogs()


def test_live_events_through_telethons_dispatch() -> None:
    import threading

    from telethon.tl import types

    from connectors.telegram.gateway import (
        TgEvent,
        TgMessageEdited,
        TgMessagesDeleted,
        TgNewMessage,
        TgOutboxRead,
    )
    from tests.unit.telegram.offline_client import T0

    platform = OfflineTelegram()
    platform.add_user(5001, "Ada", access_hash=9191)
    gw = gateway(platform, login(platform))
    incoming = types.Message(id=40, peer_id=types.PeerUser(5001), date=T0, message="new here")
    platform.pending_updates = [
        types.UpdateNewMessage(message=incoming, pts=10, pts_count=1),
        types.UpdateEditMessage(message=types.Message(id=40, peer_id=types.PeerUser(5001), date=T0,
                                                      message="edited", edit_date=T0), pts=11, pts_count=1),
        types.UpdateDeleteMessages(messages=[40], pts=12, pts_count=1),
        types.UpdateReadHistoryOutbox(peer=types.PeerUser(5001), max_id=39, pts=13, pts_count=1),
        types.UpdateUserTyping(user_id=5001, action=types.SendMessageTypingAction()),
    ]
    got: list[TgEvent] = []
    stop = threading.Event()

    def handler(event: TgEvent) -> None:
        got.append(event)
        if len(got) == 4:
            stop.set()

    gw.listen(handler, stop)
    assert [type(e) for e in got] == [TgNewMessage, TgMessageEdited, TgMessagesDeleted, TgOutboxRead]
    new = got[0]
    assert isinstance(new, TgNewMessage)
    assert new.message.key == "5001:40" and new.message.chat_user is not None
    assert new.message.chat_user.first_name == "Ada" and new.message.peer.access_hash == 9191
    assert isinstance(got[3], TgOutboxRead) and got[3].max_id == 39
