"""The reply box's helpers: saved replies, attachments, typing and read marks.

Kept out of :mod:`app.views.inbox` so the reply box calls each with one line. Every platform call is
queued (the page never waits for a platform): read marks and typing indicators go through the
``send-signals`` flow, files through the outbox like any reply.

Typing: Streamlit sends a text area's value to the server when it loses focus (or on Ctrl+Enter),
not on every keystroke, so "the agent is composing" is known when the draft changes: the draft's
``on_change`` queues a typing indicator (at most one every 20 s per conversation, see
``services/platform_signals.py``). Opening a conversation with an old draft does not: the agent may
only be reading.
"""

from __future__ import annotations

import contextlib
import uuid

import streamlit as st

from app.deps import call
from app.views import list_state
from switchboard.domain.attachments import accepted_extensions, check_upload, describe_limits
from switchboard.domain.conversation import Direction
from switchboard.errors import SwitchboardError
from switchboard.services import attachments, inbox_views, platform_signals, saved_replies
from switchboard.services.messages import MessageView
from switchboard.types import Actor


def _draft_key(conversation_id: int) -> str:
    return f"draft_{conversation_id}"


# --- saved replies ---------------------------------------------------------------------------------

def _insert_saved_reply(actor: Actor, conversation_id: int) -> None:
    """Callback (runs before the widgets): the rendered saved reply goes at the end of the draft."""
    picked = st.session_state.get(f"saved_reply_{conversation_id}")
    if picked is None:
        return
    try:
        text = call(saved_replies.render_saved_reply, actor, int(picked), conversation_id)
    except SwitchboardError as exc:
        st.session_state["_flash"] = ("error", f"Saved reply: {exc}")
        return
    draft = st.session_state.get(_draft_key(conversation_id)) or ""
    st.session_state[_draft_key(conversation_id)] = f"{draft.rstrip()}\n{text}" if draft.strip() else text


def saved_reply_picker(actor: Actor, conversation_id: int) -> None:
    """Pick a saved reply by its short code; "Insert" puts it, with the customer's name, into the draft."""
    try:
        replies = call(saved_replies.list_saved_replies, actor)
    except SwitchboardError:
        return
    if not replies:
        return
    titles = {r.id: f"/{r.code} · {r.title}" for r in replies}
    left, right = st.columns([4, 1])
    left.selectbox("Saved reply", list(titles), format_func=titles.__getitem__, index=None,
                   placeholder="Saved replies: type a short code…", key=f"saved_reply_{conversation_id}",
                   label_visibility="collapsed")
    right.button("Insert", key=f"insert_saved_{conversation_id}", on_click=_insert_saved_reply,
                 args=(actor, conversation_id), width="stretch")


# --- attachments -----------------------------------------------------------------------------------

def _upload_key(conversation_id: int) -> str:
    return f"upload_{conversation_id}_{st.session_state.get(f'upload_round_{conversation_id}', 0)}"


def _send_file(actor: Actor, conversation_id: int) -> None:
    """Callback: queue the picked file (limits checked again by the service); clear the picker once queued."""
    upload = st.session_state.get(_upload_key(conversation_id))
    if upload is None:
        st.session_state["_flash"] = ("error", "Pick a file first.")
        return
    idem = f"file_idem_{conversation_id}"
    try:
        call(attachments.enqueue_attachment, actor, conversation_id, file_name=upload.name,
             mime_type=upload.type, data=upload.getvalue(),
             caption=st.session_state.get(f"file_caption_{conversation_id}") or None,
             idempotency_key=st.session_state.setdefault(idem, uuid.uuid4().hex))
    except SwitchboardError as exc:
        st.session_state["_flash"] = ("error", f"File not sent: {exc}")
        return
    st.session_state[idem] = uuid.uuid4().hex
    list_state.changed()
    st.session_state[f"file_caption_{conversation_id}"] = ""
    st.session_state[f"upload_round_{conversation_id}"] = st.session_state.get(f"upload_round_{conversation_id}", 0) + 1


def attachment_uploader(actor: Actor, conversation_id: int) -> None:
    """Attach an image or a document: the platform's types in the picker, its size limit checked as
    soon as a file is picked (before anything is stored or sent)."""
    try:
        provider = call(inbox_views.get_conversation, actor, conversation_id).provider
    except SwitchboardError:
        return
    with st.expander("📎 Attach a file"):
        st.caption(describe_limits(provider))
        upload = st.file_uploader("File", type=accepted_extensions(provider), key=_upload_key(conversation_id),
                                  label_visibility="collapsed")
        problem = None
        if upload is not None:
            try:
                check_upload(provider, file_name=upload.name, mime_type=upload.type, size_bytes=upload.size)
            except SwitchboardError as exc:
                problem = str(exc)
                st.error(problem)
        st.text_input("Caption (optional)", key=f"file_caption_{conversation_id}")
        st.button("Send file", key=f"send_file_{conversation_id}", disabled=upload is None or problem is not None,
                  on_click=_send_file, args=(actor, conversation_id))


# --- typing and read marks -------------------------------------------------------------------------

def on_draft_change(actor: Actor, conversation_id: int) -> None:
    """The draft text area's ``on_change``: the agent is composing; queue a typing indicator."""
    if (st.session_state.get(_draft_key(conversation_id)) or "").strip():
        with contextlib.suppress(SwitchboardError):  # a hint to the customer, never an error for the agent
            call(platform_signals.queue_typing, actor, conversation_id)


def mark_seen(actor: Actor, conversation_id: int, messages: list[MessageView], *, mine: bool) -> None:
    """The assignee sees the customer's messages: queue a read mark when a newer one appears (the
    service marks once per message, and only where the channel wants it)."""
    if not mine:
        return
    newest = max((m.id for m in messages if m.direction == Direction.INBOUND), default=None)
    key = f"_seen_{conversation_id}"
    if newest is None or st.session_state.get(key) == newest:
        return
    with contextlib.suppress(SwitchboardError):
        call(platform_signals.queue_read_mark, actor, conversation_id)
    st.session_state[key] = newest
