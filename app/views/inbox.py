"""The agent's inbox: queues, the conversation list, the thread, Accept / Release / Complete, reply.

Live parts are fragments that rerun every few seconds; the open thread's messages ask "anything
changed?" every second (:func:`messages`), so a new status shows at once. Customer text is always shown with
`st.text` or in table cells (never Markdown or HTML) after :func:`app.text.visible` (invisible and
bidirectional control characters become markers); where Markdown renders (captions, button labels) it
goes through :func:`app.text.plain`. Times are shown in the organization's timezone, with a separator
for each day in the thread. Filters (channel, assignee, unread only, status, search) are parameters
of the same keyset-paginated query. Drafts live in `st.session_state["draft_<conversation id>"]`,
so they survive reruns and a re-login; each draft carries its own idempotency key, so a double
click sends once.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import streamlit as st

from app import signin
from app.deps import call
from app.text import day_label, plain, visible, when, zone
from app.views import compose, erase, template_picker
from app.views.list_state import QUEUE_WANTED, SEARCH_KEPT, changed, show_queue
from switchboard.domain.conversation import (
    AuthorKind,
    ConversationAction,
    ConversationStatus,
    Direction,
    MessageStatus,
)
from switchboard.errors import SwitchboardError
from switchboard.services import conversations as conv
from switchboard.services import inbox_views, media, outbox, presence
from switchboard.services.inbox_views import channel_label
from switchboard.services.messages import AttachmentView
from switchboard.services.organizations import get_organization
from switchboard.types import Actor

REFRESH_SECONDS = 4
SEARCH_REFRESH_SECONDS = 30  # a search's results are kept this long (the list refreshes every 4 s)
LIVE_SECONDS = 1  # the open thread's messages: a new status shows within ~1 s (the requirement is 2 s)
HEARTBEAT_SECONDS = 20
THREAD_PAGE = 50  # the newest messages of an open thread
OLDER_PAGE = 100  # messages added by each "Load older messages"
QUEUES = {"unassigned": "Unassigned", "mine": "Mine", "all": "All I can see"}
STATUS_ICON: dict[str, str] = {ConversationStatus.PENDING: "🟡", ConversationStatus.ASSIGNED: "🟢",
                               ConversationStatus.COMPLETED: "⚪"}
STATUS_LABEL: dict[str, str] = {ConversationStatus.PENDING: "Waiting", ConversationStatus.ASSIGNED: "Assigned",
                                ConversationStatus.COMPLETED: "Done"}
MESSAGE_STATUS: dict[str, str] = {MessageStatus.PENDING: "🕓 sending", MessageStatus.SENT: "✓ sent",
                                  MessageStatus.DELIVERED: "✓✓ delivered", MessageStatus.READ: "✓✓ read",
                                  MessageStatus.FAILED: "⚠️ failed", MessageStatus.UNKNOWN: "❓ may have been sent"}
BUTTONS = {  # column, label, service; which of them show is the conversation rules' answer
    ConversationAction.ACCEPT: (0, "Accept", conv.accept),
    ConversationAction.REOPEN: (0, "Reopen", conv.reopen),
    ConversationAction.RELEASE: (1, "Release", conv.release),
    ConversationAction.COMPLETE: (2, "Complete", conv.complete),
}


def _heartbeat(actor: Actor) -> None:
    last = st.session_state.get("_hb_at", 0.0)
    if time.monotonic() - last >= HEARTBEAT_SECONDS:
        with contextlib.suppress(SwitchboardError):
            call(presence.heartbeat, actor, state=st.session_state.get("presence_state", "ONLINE"))
        st.session_state["_hb_at"] = time.monotonic()


def _run(action: str, fn: object, *args: object, **kwargs: object) -> bool:
    try:
        call(fn, *args, **kwargs)  # type: ignore[arg-type]
    except SwitchboardError as exc:
        st.session_state["_flash"] = ("error", f"{action}: {exc}")
        return False
    changed()  # the list shows what the agent just did, not a kept search
    return True


def _flash() -> None:
    flash = st.session_state.pop("_flash", None)
    if flash:
        kind, text = flash
        (st.error if kind == "error" else st.success)(text)


@st.fragment(run_every=REFRESH_SECONDS)
def conversation_list(actor: Actor) -> None:
    _heartbeat(actor)
    counts = call(inbox_views.queue_counts, actor)
    wanted = st.session_state.pop(QUEUE_WANTED, None)  # an action asked for a queue (accept: Mine)
    if wanted in QUEUES:  # the control keeps the value last clicked: it is set too, before it is drawn
        st.session_state["queue"] = st.session_state["queue_control"] = wanted
        st.session_state.pop("list_cursor", None)
    queue = st.session_state.get("queue", "unassigned")
    st.session_state.setdefault("queue_control", queue)  # its first value (not default=: both would warn)
    labels = {k: f"{v} ({counts.get(k if k != 'all' else 'all_open', 0)})" for k, v in QUEUES.items()}
    chosen = st.segmented_control("Queue", list(QUEUES), format_func=lambda k: labels[k],
                                  key="queue_control", label_visibility="collapsed")
    if chosen and chosen != queue:
        st.session_state["queue"] = chosen
        st.session_state.pop("list_cursor", None)
        queue = chosen
    search = st.session_state.get("search") or None
    status = st.session_state.get("status_filter")
    args: dict[str, Any] = {
        "queue": queue, "search": search, "status": {"Open": "OPEN", "Any": None, None: "OPEN"}.get(status, status),
        "channel_id": st.session_state.get("channel_filter"),
        "assigned_user_id": st.session_state.get("assignee_filter"),
        "unread_only": bool(st.session_state.get("unread_only")), "cursor": st.session_state.get("list_cursor"),
        "limit": 50}
    # a search reads message text (0.2-0.6 s at 10 M messages): its results are kept for
    # SEARCH_REFRESH_SECONDS instead of being searched again on every refresh of the list
    kept = st.session_state.get(SEARCH_KEPT)
    if search and kept is not None and kept[0] == args and time.monotonic() - kept[1] < SEARCH_REFRESH_SECONDS:
        page = kept[2]
    else:
        try:
            page = call(inbox_views.list_conversations, actor, **args)
        except SwitchboardError as exc:  # e.g. a channel filter the actor may no longer view
            st.warning(str(exc))
            return
        st.session_state[SEARCH_KEPT] = (args, time.monotonic(), page) if search else None
    if search:
        st.caption(f"Search results are refreshed every {SEARCH_REFRESH_SECONDS} s.")
    items = page.items
    if not items:
        filtered = any(st.session_state.get(k) for k in ("channel_filter", "assignee_filter", "unread_only", "search"))
        st.info("Nothing here. New conversations appear automatically." if queue == "unassigned" and not filtered
                else "No conversations match.")
        return
    selected = st.session_state.get("selected_conversation")
    tz = _tz()
    today = datetime.now(tz).date()
    rows = [
        {
            "": "▶" if c.id == selected else "",
            "Customer": visible(c.contact_name or c.contact_handle),
            "Channel": channel_label(c.channel_name, c.provider),
            "Last message": visible((c.last_message_preview or "")[:80]),
            "When": when(c.last_message_at, tz, today),
            "Unread": c.unread_count or None,
            "Status": STATUS_LABEL.get(c.status, c.status),
            "Agent": c.assigned_user_name or "",
        }
        for c in items
    ]
    # Selections are row positions: key the table by the listed ids, so when new messages re-sort
    # the list the old selection is dropped instead of silently pointing at another conversation.
    order_key = hashlib.sha1(",".join(str(c.id) for c in items).encode()).hexdigest()[:12]
    event = st.dataframe(
        rows, hide_index=True, on_select="rerun", selection_mode="single-row",
        key=f"conv_table_{queue}_{order_key}",
        width="stretch",
        column_config={
            "Customer": st.column_config.TextColumn(width="small"),
            "Channel": st.column_config.TextColumn(width="small"),
            "Last message": st.column_config.TextColumn(width="medium"),
            "When": st.column_config.TextColumn(width="small"),
            "Unread": st.column_config.NumberColumn(width="small"),
        },
    )
    picked = event.selection.rows if event is not None else []
    if picked:
        cid = items[picked[0]].id
        if cid != selected:
            st.session_state["selected_conversation"] = cid
            st.query_params["c"] = str(cid)
            st.rerun()
    if page.next_cursor and st.button("Older conversations →", key="older_convs"):
        st.session_state["list_cursor"] = page.next_cursor
        st.rerun(scope="fragment")
    if st.session_state.get("list_cursor") and st.button("← Newest", key="newest_convs"):
        st.session_state.pop("list_cursor", None)
        st.rerun(scope="fragment")


@st.fragment(run_every=REFRESH_SECONDS)
def thread(actor: Actor, conversation_id: int) -> None:
    try:
        c = call(inbox_views.get_conversation, actor, conversation_id)
    except SwitchboardError as exc:
        st.warning(str(exc))
        return
    if c.unread_count and c.assigned_user_id == actor.user_id:
        _run("Mark read", conv.mark_read, actor, conversation_id)

    head = st.container()
    with head:
        st.text(visible(f"{c.contact_name or c.contact_handle}  ·  {c.contact_handle}"))
        channel = channel_label(c.channel_name, c.provider)
        st.caption(f"{STATUS_ICON.get(c.status, '')} {STATUS_LABEL.get(c.status, c.status)} · {plain(channel)}"
                   + (f" · assigned to {plain(c.assigned_user_name)}" if c.assigned_user_name else "")
                   + f" · cycle {c.cycle_number}")
    _actions(actor, c)
    _profile(actor, c.contact_id, c.id)
    _flash()
    messages(actor, conversation_id, mine=c.assigned_user_id == actor.user_id)


def _one_page_more(conversation_id: int) -> None:
    key = f"thread_older_{conversation_id}"
    st.session_state[key] = st.session_state.get(key, 0) + 1


@st.fragment(run_every=LIVE_SECONDS)
def messages(actor: Actor, conversation_id: int, *, mine: bool) -> None:
    """The messages, live: a cheap "anything changed?" query every second; the thread is read again
    only when it changed, so a new status shows within about a second of being stored."""
    older = st.session_state.get(f"thread_older_{conversation_id}", 0)  # older pages the agent asked for
    cache_key = f"_thread_{conversation_id}"
    try:
        version = call(inbox_views.thread_version, actor, conversation_id, newest=THREAD_PAGE + older * OLDER_PAGE)
        cached = st.session_state.get(cache_key)
        if cached is None or cached[:2] != (version, older):
            # the newest page, then each older page from the previous one's cursor: the pages stay
            # contiguous however many messages arrived since the agent asked for them
            pages = [call(inbox_views.get_thread, actor, conversation_id, limit=THREAD_PAGE)]
            for _ in range(older):
                if pages[-1].next_cursor is None:
                    break
                pages.append(call(inbox_views.get_thread, actor, conversation_id, before=pages[-1].next_cursor,
                                  limit=OLDER_PAGE))
            items = [m for p in reversed(pages) for m in p.items]
            st.session_state[cache_key] = (version, older, items, pages[-1].next_cursor is not None)
        else:
            items = cached[2]
        more = st.session_state[cache_key][3]
    except SwitchboardError as exc:
        st.warning(str(exc))
        return
    compose.mark_seen(actor, conversation_id, items, mine=mine)
    if more:  # the click's rerun (of this fragment) already reads one page more
        st.button("Load older messages", key=f"older_{conversation_id}", on_click=_one_page_more,
                  args=(conversation_id,))
    tz = _tz()
    today = datetime.now(tz).date()
    shown_day = None
    box = st.container(height=460)
    with box:
        for m in items:
            day = m.sent_at.astimezone(tz).date()
            if day != shown_day:
                st.caption(f"—— {day_label(day, today)} ——")
                shown_day = day
            inbound = m.direction == Direction.INBOUND
            role = "user" if inbound else "assistant"
            avatar = "🧑" if inbound else ("🤖" if m.author_kind == AuthorKind.BOT else "🎧")
            with st.chat_message(role, avatar=avatar):
                if m.is_deleted:
                    st.caption("message deleted by the customer")
                elif m.body:
                    st.text(visible(m.body))
                for a in m.attachments:
                    _attachment(actor, a)
                who = "customer" if inbound else (m.author_name or m.author_kind)
                meta = [f"{m.sent_at.astimezone(tz):%H:%M}", who]
                if not inbound:
                    meta.append(MESSAGE_STATUS.get(m.status, m.status))
                if m.is_edited:
                    meta.append("edited")
                st.caption(" · ".join(plain(x) for x in meta))
                if m.status in (MessageStatus.FAILED, MessageStatus.UNKNOWN) and m.error_message:
                    st.text(f"⚠️ {m.error_code or ''} {m.error_message}")


@st.cache_data(max_entries=64, show_spinner=False)
def _file_bytes(path: str) -> bytes:
    """Stored media never changes (content-addressed download): read it once, not every refresh."""
    return Path(path).read_bytes()


def _attachment(actor: Actor, a: AttachmentView) -> None:
    raw = f"📎 {a.kind}: {a.file_name or a.mime_type or ''}"  # a customer's file name: shown as typed
    label = visible(raw)
    if not a.local_path:
        if a.download_error:
            st.text(f"{label} (not downloaded: {a.download_error})")
        else:
            st.text(label + ("" if a.url else " (downloading…)"))
        return
    try:
        f = call(media.attachment_file, actor, a.id)  # the access check runs on every render
        data = _file_bytes(f.path)
    except (SwitchboardError, OSError) as exc:
        st.text(f"{label} (unavailable: {exc})")
        return
    if a.kind in ("image", "sticker") and (a.mime_type or "").startswith("image/"):
        try:
            st.image(data, width=240)
        except (OSError, ValueError):  # not decodable as an image, whatever the platform said: offer the file
            st.caption("(no preview: the file is not a readable image)")
    st.download_button(plain(raw), data,
                       file_name=visible(f.file_name or Path(f.path).name), mime=f.mime_type, key=f"att_{a.id}")


def _tz() -> tzinfo:
    """The organization's timezone (read by :func:`page` on every full run)."""
    return zone(st.session_state.get("_org_tz"))


def _open(conversation_id: int) -> None:
    """Open another conversation, as a click in the list or the deep link /inbox?c=<id> would."""
    st.session_state["selected_conversation"] = conversation_id
    st.query_params["c"] = str(conversation_id)


def _profile(actor: Actor, contact_id: int, current_id: int) -> None:
    with st.expander("Customer profile"):
        try:
            p = call(inbox_views.contact_profile, actor, contact_id)
        except SwitchboardError as exc:
            st.caption(str(exc))
            return
        tz = _tz()
        st.text(visible("\n".join(x for x in [
            f"Name: {p.display_name or '-'}",
            f"Phone: {p.phone}" if p.phone else "",
            f"Username: {p.username}" if p.username else "",
            f"{p.provider} id: {p.provider_contact_id}",
            f"First seen: {p.first_seen_at.astimezone(tz):%Y-%m-%d %H:%M}   "
            f"Last seen: {p.last_seen_at.astimezone(tz):%Y-%m-%d %H:%M}",
        ] if x)))
        others = [o for o in p.conversations if o.id != current_id]
        if others:
            st.caption("Other conversations (click to open)")
            for o in others:
                label = (f"#{o.id} {channel_label(o.channel_name, o.provider)} · "
                         f"{STATUS_LABEL.get(o.status, o.status)} · {(o.last_message_preview or '')[:60]}")
                if st.button(plain(label), key=f"open_conv_{current_id}_{o.id}"):
                    _open(o.id)
                    st.rerun()
        erase.erase_section(actor, contact_id)  # admins only (app/views/erase.py)


def _actions(actor: Actor, c: inbox_views.ConversationView) -> None:
    """The buttons the conversation rules offer this actor now (the services check again on click)."""
    allowed = call(conv.available_actions, actor, c.id)
    cols = st.columns(4)
    for action, (col, label, service) in BUTTONS.items():
        if action not in allowed:
            continue
        primary = action is ConversationAction.ACCEPT
        if cols[col].button(label, type="primary" if primary else "secondary", key=f"{action.value}_{c.id}"):
            if _run(label, service, actor, c.id) and primary:
                show_queue("mine")
            st.rerun()
    if ConversationAction.REASSIGN in allowed:
        with cols[3].popover("Reassign"):
            agents = [a for a in call(inbox_views.list_agents, actor) if a.id != c.assigned_user_id]
            if not agents:
                st.caption("no other agents")
            else:
                target = st.selectbox("To", agents, format_func=lambda a: f"{a.name} ({a.presence or 'offline'})",
                                      key=f"reassign_to_{c.id}")
                if st.button("Reassign", key=f"reassign_{c.id}"):
                    _run("Reassign", conv.reassign, actor, c.id, target.id)
                    st.rerun()


def _send(actor: Actor, conversation_id: int) -> None:
    """Send-button callback: runs before the widgets, so the draft can be cleared on success."""
    draft_key, idem_key = f"draft_{conversation_id}", f"idem_{conversation_id}"
    body = (st.session_state.get(draft_key) or "").strip()
    if not body:
        st.session_state["_flash"] = ("error", "The reply is empty.")
        return
    try:
        call(outbox.enqueue_reply, actor, conversation_id, body, idempotency_key=st.session_state[idem_key])
    except SwitchboardError as exc:
        st.session_state["_flash"] = ("error", f"Not sent: {exc}")
        return
    st.session_state[draft_key] = ""  # keeps the draft on failure, clears it once queued
    st.session_state[idem_key] = uuid.uuid4().hex
    changed()  # the list shows the reply at once


def reply_box(actor: Actor, conversation_id: int) -> None:
    if not template_picker.reply_options(actor, conversation_id):  # the window; templates outside it
        _flash()
        return
    idem_key = f"idem_{conversation_id}"
    if idem_key not in st.session_state:
        st.session_state[idem_key] = uuid.uuid4().hex
    compose.saved_reply_picker(actor, conversation_id)
    st.text_area("Reply", key=f"draft_{conversation_id}", height=100, placeholder="Type your reply…",
                 label_visibility="collapsed", on_change=compose.on_draft_change, args=(actor, conversation_id))
    st.button("Send", type="primary", key=f"send_{conversation_id}", on_click=_send, args=(actor, conversation_id))
    compose.attachment_uploader(actor, conversation_id)
    _flash()


def _first_page() -> None:
    st.session_state.pop("list_cursor", None)


def page() -> None:
    actor = signin.page_actor()
    st.session_state["_org_tz"] = call(get_organization, actor).timezone
    choices = call(inbox_views.inbox_filters, actor)
    channels, people = dict(choices.channels), dict(choices.assignees)
    with st.sidebar:
        st.text_input("Search customers and messages", key="search", on_change=_first_page)
        st.selectbox("Status", ["Open", "Any", *(s.value for s in ConversationStatus)], key="status_filter",
                     on_change=_first_page)
        st.selectbox("Channel", [None, *channels], key="channel_filter", on_change=_first_page,
                     format_func=lambda c: "Every channel" if c is None else channels.get(c, f"channel {c}"))
        st.selectbox("Assigned to", [None, *people], key="assignee_filter", on_change=_first_page,
                     format_func=lambda u: "Anyone" if u is None else people.get(u, f"user {u}"))
        st.toggle("Unread only", key="unread_only", on_change=_first_page)
        st.caption(f"Times in {plain(st.session_state['_org_tz'])}, the organization's timezone.")
        st.radio("My status", ["ONLINE", "AWAY"], key="presence_state", horizontal=True,
                 on_change=lambda: st.session_state.update(_hb_at=0.0))
    linked = st.query_params.get("c")
    if linked and linked.isdigit():  # deep link: /?c=<conversation id> (the default page)
        st.session_state["selected_conversation"] = int(linked)
    left, right = st.columns([5, 6], gap="medium")
    with left:
        conversation_list(actor)
    with right:
        cid = st.session_state.get("selected_conversation")
        if cid is None:
            st.info("Pick a conversation on the left. Accept it to reply.")
            return
        thread(actor, cid)
        reply_box(actor, cid)
