"""New message: write to a customer first, on a channel the user may send on.

Pick the channel, then the contact: an existing one (search by name, phone, @username or platform
id) or a new one — a phone number with its country code on WhatsApp (checked and shown as E.164), a
Telegram @username or numeric id. Messenger and Instagram only offer people who already wrote to
the page. What the first message may be comes from the messaging window
(:func:`switchboard.services.outreach.new_message_window`): free text, or an approved template
where WhatsApp requires one (the same picker as the inbox's reply box). Sending creates (or
reopens) the conversation assigned to the sender and opens it in the inbox.
"""

from __future__ import annotations

import uuid

import streamlit as st

from app import signin
from app.deps import call
from app.text import visible
from app.views.list_state import show_queue
from app.views.template_picker import pick_template, show_window
from switchboard.domain.messaging_window import TAG_PROVIDERS, label
from switchboard.domain.recipients import PHONE_PROVIDERS, parse_recipient
from switchboard.errors import SwitchboardError
from switchboard.policy import Action
from switchboard.services import outreach
from switchboard.services.templates import channel_templates
from switchboard.types import Actor

EXISTING = "Existing contact"
NEW = {**{p: "New phone number" for p in (*PHONE_PROVIDERS, "twilio")}, "telegram": "Telegram username or id",
       "email": "New email address"}
PLACEHOLDER = {**{p: "+49 151 23456789" for p in (*PHONE_PROVIDERS, "twilio")}, "telegram": "@username or 123456789",
               "email": "name@example.com"}
IDEM_KEY = "new_message_idem"


def _contact(actor: Actor, channel: outreach.ChannelOption) -> tuple[int | None, str] | None:
    """(contact id, typed recipient) chosen on the page, or None while nothing valid is chosen."""
    modes = [EXISTING] + ([NEW[channel.provider]] if channel.provider in NEW else [])
    mode = st.radio("Contact", modes, horizontal=True, key=f"nm_mode_{channel.id}")
    if channel.provider in TAG_PROVIDERS:
        st.caption(f"{label(channel.provider)} cannot message a person first: only people who wrote to this "
                   "page are listed.")
    if mode == EXISTING:
        query = st.text_input("Search contacts (name, phone, @username)", key=f"nm_query_{channel.id}")
        options = call(outreach.search_contacts, actor, channel.id, query, 20)
        if not options:
            st.caption("No contact matches.")
            return None
        picked = st.selectbox("Contact", options, key=f"nm_contact_{channel.id}",
                              format_func=lambda o: visible(f"{o.name} · {o.handle}")
                              + (f" · conversation {o.conversation_status.lower()}" if o.conversation_status else ""))
        return None if picked is None else (picked.id, "")
    typed = st.text_input(NEW[channel.provider], key=f"nm_recipient_{channel.id}",
                          placeholder=PLACEHOLDER[channel.provider])
    if not typed.strip():
        return None
    try:
        who = parse_recipient(channel.provider, typed)
    except SwitchboardError as exc:
        st.error(str(exc))
        return None
    st.caption(f"Writing to {who.shown}")  # parsed: E.164 digits or a checked @username / id
    return None, typed


def _open_in_inbox(conversation_id: int) -> None:
    from app.main import page_of

    st.session_state["selected_conversation"] = conversation_id
    show_queue("mine")
    st.switch_page(page_of("inbox"), query_params={"c": str(conversation_id)})


def page() -> None:
    actor = signin.page_actor(Action.WORK_INBOX)
    st.title("New message")
    channels = call(outreach.sendable_channels, actor)
    if not channels:
        st.info("You may not send on any channel: ask a manager for 'send' permission on one.")
        return
    channel = st.selectbox("Channel", channels, key="nm_channel",
                           format_func=lambda c: f"{c.name} · {label(c.provider)}"
                           + (f" ({c.status})" if c.status != "active" else ""))
    assert channel is not None
    chosen = _contact(actor, channel)
    if chosen is None:
        return
    contact_id, recipient = chosen
    try:
        window = call(outreach.new_message_window, actor, channel.id, contact_id, recipient=recipient or None)
    except SwitchboardError as exc:
        st.error(str(exc))
        return
    show_window(window)
    body: str | None = None
    template = None
    if window.free_text_allowed:
        body = st.text_area("Message", key=f"nm_body_{channel.id}", height=120, placeholder="Type your message…")
    elif window.templates_allowed:
        template = pick_template(call(channel_templates, actor, channel.id), key=f"nm_tpl_{channel.id}")
        if template is None:
            return
    else:
        return
    if IDEM_KEY not in st.session_state:
        st.session_state[IDEM_KEY] = uuid.uuid4().hex
    if not st.button("Send", type="primary", key="nm_send"):
        return
    try:
        message = call(outreach.start_conversation, actor, channel.id, recipient, body=body,
                       template_id=None if template is None else template[0].id,
                       parameters=None if template is None else template[1],
                       idempotency_key=st.session_state[IDEM_KEY], contact_id=contact_id)
    except SwitchboardError as exc:
        st.error(f"Not sent: {exc}")
        return
    st.session_state[IDEM_KEY] = uuid.uuid4().hex
    st.success(f"Queued in conversation {message.conversation_id}; opening it in the inbox…")
    _open_in_inbox(message.conversation_id)
