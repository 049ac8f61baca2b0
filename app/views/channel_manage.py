"""Channels & health, the lifecycle part (admins): test the connection, change credentials, rename,
pause/resume, remove one channel; and the banner about refused or expiring credentials that
app/main.py shows admins on top of every page."""

from __future__ import annotations

import streamlit as st

from app import deps
from app.deps import call, secret_key, settings
from switchboard.errors import SwitchboardError
from switchboard.services import channel_lifecycle as lifecycle
from switchboard.services.channels import ChannelView
from switchboard.types import Actor
from switchboard.workflows.channel_checks import check_connection
from switchboard.workflows.connector_cache import ConnectorCache

SECRET_MARKS = ("token", "secret", "hash", "session")


def credential_banner(actor: Actor) -> None:
    """One warning per channel whose credentials were refused or expire soon (admins)."""
    try:
        warnings = call(lifecycle.credential_warnings, actor, within_days=settings().credential_expiry_warn_days)
    except SwitchboardError:
        return  # not an admin (any more): nothing to warn about
    for w in warnings:
        st.warning(f"Channel {w.channel_key} ({w.channel_name}): {w.message}. See Channels & health.", icon="🔑")


def section(actor: Actor, channels: list[ChannelView], credential_fields: dict[str, list[str]]) -> None:
    """Manage one channel of the organization (removed channels are listed, not managed)."""
    st.subheader("Manage a channel")
    live = {c.id: c for c in channels if c.status != "removed"}
    if not live:
        st.info("No channel to manage.")
        return
    picked = st.selectbox("Channel", list(live), format_func=lambda i: f"{live[i].key} — {live[i].name}",
                          key="manage_channel")
    ch = live[picked]
    st.text(f"Status: {ch.status}" + (f" — last error: {ch.last_error}" if ch.last_error else ""))
    if ch.checked_at is not None:
        st.text(f"Last connection test {ch.checked_at:%Y-%m-%d %H:%M} UTC: {ch.check_result}")
    if ch.credentials_expire_at is not None:
        st.text(f"Access token expires {ch.credentials_expire_at:%Y-%m-%d %H:%M} UTC")

    cols = st.columns(3)
    if cols[0].button("Test connection", key=f"test_{ch.id}"):
        _test(actor, ch)
    if ch.status in ("paused", "error"):
        if cols[1].button("Resume", key=f"resume_{ch.id}"):
            deps.act(f"Channel {ch.key} resumed: what arrived meanwhile is processed in order.",
                     lifecycle.resume_channel, actor, ch.id)
    elif cols[1].button("Pause", key=f"pause_{ch.id}"):
        deps.act(f"Channel {ch.key} paused: deliveries are kept, nothing is processed or sent.",
                 lifecycle.pause_channel, actor, ch.id)
    sure = cols[2].checkbox("I want to remove it", key=f"sure_remove_{ch.id}")
    if cols[2].button("Remove", key=f"remove_{ch.id}", disabled=not sure):
        deps.act(f"Channel {ch.key} removed: its history stays, its webhooks are refused.",
                 lifecycle.remove_channel, actor, ch.id)

    with st.form(f"rename_{ch.id}"):
        name = st.text_input("Display name", value=ch.name, key=f"name_{ch.id}")
        if st.form_submit_button("Rename"):
            deps.act(f"Channel {ch.key} renamed.", lifecycle.rename_channel, actor, ch.id, name)
    with st.form(f"credentials_{ch.id}", clear_on_submit=True):
        st.caption("New credentials: only the fields you fill in change; they are encrypted and the change "
                   "is audited (never the values).")
        fields = {f: st.text_input(f, type="password" if any(m in f for m in SECRET_MARKS) else "default",
                                   key=f"cred_{ch.id}_{f}")
                  for f in credential_fields.get(ch.provider, [])}
        if st.form_submit_button("Save credentials"):
            deps.act(f"Credentials of {ch.key} saved.", lifecycle.update_credentials, actor, ch.id, secret_key(),
                     {k: v.strip() for k, v in fields.items() if v.strip()})


def _test(actor: Actor, ch: ChannelView) -> None:
    connectors = ConnectorCache(deps.engine(), secret_key())
    try:
        result = check_connection(deps.engine(), connectors, actor, ch.id)
    except SwitchboardError as exc:
        st.error(str(exc))
        return
    finally:
        connectors.close()
    if result.ok:
        st.success(f"Connection to {ch.key} works: {result.result}")
    else:
        st.error(f"Connection to {ch.key} failed: {result.result}")
