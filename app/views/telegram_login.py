"""Admin: connect a Telegram user account to a Telegram channel (phone -> code -> 2FA -> done).

Each step is one Streamlit rerun. The login state (:class:`LoginState`) lives in
``st.session_state``; the Telethon session string is saved to the channel's encrypted credentials
after every step (a code is bound to the session that requested it), together with the pending
login state (phone_code_hash), so a browser refresh or another replica can continue the login. Names and numbers are shown as plain text.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import signin
from app.deps import call, secret_key
from connectors.base import ConnectorError
from connectors.telegram import get_telegram_gateway
from connectors.telegram.login import LoginError, LoginState, start_login, submit_code, submit_password
from switchboard.errors import SwitchboardError
from switchboard.services.channels import (
    ChannelView,
    channel_credentials,
    organization_channels,
    set_channel_credentials,
)
from switchboard.types import Actor

STATES = "tg_login_states"  # {channel id: LoginState.to_dict()}
FLASH = "tg_login_flash"


def _flash(kind: str, message: str) -> None:
    st.session_state[FLASH] = (kind, message)


def _show_flash() -> None:
    flash = st.session_state.pop(FLASH, None)
    if flash:
        kind, message = flash
        (st.error if kind == "error" else st.success)(message)


def _state_for(channel_id: int, creds: dict[str, Any]) -> LoginState:
    stored = st.session_state.setdefault(STATES, {}).get(channel_id)
    if stored is not None:
        return LoginState.from_dict(stored)
    pending = creds.get("login")
    if isinstance(pending, dict) and creds.get("session") and pending.get("session") == creds.get("session"):
        return LoginState.from_dict(pending)  # a login in progress (browser refreshed, other replica)
    if creds.get("session") and creds.get("user_id"):
        return LoginState(step="authorized", phone=creds.get("phone"), session=str(creds["session"]),
                          user_id=int(creds["user_id"]), user_name=creds.get("user_name"))
    return LoginState(phone=creds.get("phone"))


def _keep(channel_id: int, state: LoginState) -> None:
    st.session_state.setdefault(STATES, {})[channel_id] = state.to_dict()


def _save(actor: Actor, channel: ChannelView, creds: dict[str, Any], state: LoginState) -> dict[str, Any]:
    """Persist the session string (and who is logged in) to the channel's encrypted credentials."""
    merged = {**creds, "session": state.session, "phone": state.phone or creds.get("phone")}
    merged.pop("login", None)
    if state.step in ("code", "password"):
        merged["login"] = state.to_dict()  # phone_code_hash etc.: the next step may run anywhere
    if state.step == "authorized":
        merged.update(user_id=state.user_id, user_name=state.user_name)
    else:
        merged.pop("user_id", None)
        merged.pop("user_name", None)
    call(set_channel_credentials, actor, channel.id, secret_key(), merged)
    return merged


def _step(actor: Actor, channel: ChannelView, creds: dict[str, Any], state: LoginState, action: str,
          value: str) -> None:
    """Run one login step against Telegram and keep/persist the result."""
    gateway = get_telegram_gateway({**creds, "session": state.session}, receive_updates=False)
    try:
        if action == "phone":
            new_state = start_login(gateway, value)
        elif action == "code":
            new_state = submit_code(gateway, state, value)
        else:
            new_state = submit_password(gateway, state, value)
    finally:
        gateway.close()
    _save(actor, channel, creds, new_state)
    _keep(channel.id, new_state)
    if new_state.step == "authorized":
        _flash("success", "Telegram account connected. The sync picks up its chats at its next run.")


def _restart(actor: Actor, channel: ChannelView, creds: dict[str, Any], phone: str | None) -> None:
    state = LoginState(phone=phone)
    _save(actor, channel, creds, state)
    _keep(channel.id, state)


def page() -> None:
    actor = signin.page_actor()
    st.title("Telegram login")
    try:  # the services refuse anyone but admins; the page only says so
        channels = call(organization_channels, actor, provider="telegram")
    except SwitchboardError as exc:
        text = str(exc)
        st.error(text[:1].upper() + text[1:] + ".")
        return
    if not channels:
        st.info("There is no Telegram channel yet. Add one on Channels & health (provider telegram, "
                "with the api_id and api_hash from my.telegram.org), then come back here.")
        return
    by_label = {f"{c.name} ({c.key})": c for c in channels}
    label = st.selectbox("Channel", list(by_label), key="tg_channel")
    channel = by_label[label or next(iter(by_label))]
    creds = call(channel_credentials, actor, channel.id, secret_key())
    state = _state_for(channel.id, creds)
    _show_flash()

    try:
        if state.step == "phone":
            _phone_step(actor, channel, creds, state)
        elif state.step == "code":
            _code_step(actor, channel, creds, state)
        elif state.step == "password":
            _password_step(actor, channel, creds, state)
        else:
            _authorized(actor, channel, creds, state)
    except LoginError as exc:
        if exc.restart:
            _restart(actor, channel, creds, state.phone)
        _flash("error", exc.message)
        st.rerun()
    except (ConnectorError, SwitchboardError) as exc:
        _flash("error", f"Telegram: {exc}")
        st.rerun()


def _phone_step(actor: Actor, channel: ChannelView, creds: dict[str, Any], state: LoginState) -> None:
    st.write("Step 1 of 3: the account's phone number. Telegram sends a login code to the Telegram app.")
    with st.form("tg_phone"):
        api_id = st.text_input("api_id", value=str(creds.get("api_id") or ""), key="tg_api_id")
        api_hash = st.text_input("api_hash", value=str(creds.get("api_hash") or ""), type="password",
                                 key="tg_api_hash")
        phone = st.text_input("Phone number (international, e.g. +4915112345678)",
                              value=state.phone or "", key="tg_phone_number")
        submitted = st.form_submit_button("Send code")
    if not submitted:
        return
    api_id = api_id.strip()
    if api_id and not api_id.isdigit():
        st.error("api_id is a number (see my.telegram.org → API development tools).")
        return
    updated = {**creds, "api_id": int(api_id) if api_id else creds.get("api_id"),
               "api_hash": api_hash.strip() or creds.get("api_hash"), "session": ""}
    _step(actor, channel, updated, LoginState(), "phone", phone)
    st.rerun()


def _code_step(actor: Actor, channel: ChannelView, creds: dict[str, Any], state: LoginState) -> None:
    st.write("Step 2 of 3: the login code Telegram sent to the app (or by SMS) for")
    st.text(state.phone or "")
    _secret_form(actor, channel, creds, state, "code", "Login code", password=False)


def _password_step(actor: Actor, channel: ChannelView, creds: dict[str, Any], state: LoginState) -> None:
    st.write("Step 3 of 3: this account has two-step verification. Enter its password.")
    if state.password_hint:
        st.caption("Password hint:")
        st.text(state.password_hint)
    _secret_form(actor, channel, creds, state, "password", "Two-step verification password", password=True)


def _secret_form(actor: Actor, channel: ChannelView, creds: dict[str, Any], state: LoginState, step: str,
                 label: str, *, password: bool) -> None:
    """The form of one login step (code or 2FA password) with its Start over button."""
    with st.form(f"tg_{step}"):
        value = st.text_input(label, type="password" if password else "default", key=f"tg_{step}_input")
        submitted = st.form_submit_button("Sign in")
    if st.button("Start over", key="tg_restart"):
        _restart(actor, channel, creds, state.phone)
        st.rerun()
    if submitted:
        _step(actor, channel, creds, state, step, value)
        st.rerun()


def _authorized(actor: Actor, channel: ChannelView, creds: dict[str, Any], state: LoginState) -> None:
    st.success("This channel is connected to a Telegram account.")
    st.text(f"Account: {state.user_name or '?'} (id {state.user_id}), phone {state.phone or '?'}")
    if st.button("Disconnect (forget the session)", key="tg_disconnect"):
        _restart(actor, channel, creds, state.phone)
        _flash("success", "Session forgotten. Log in again to reconnect the account.")
        st.rerun()
