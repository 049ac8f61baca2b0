"""Manager: who is online, their load, the unassigned backlog, reassign."""

from __future__ import annotations

import streamlit as st

from app import signin
from app.deps import call
from switchboard.errors import SwitchboardError
from switchboard.services import conversations as conv
from switchboard.services import inbox_views


@st.fragment(run_every=10)
def _board(actor: object) -> None:
    agents = call(inbox_views.list_agents, actor)
    counts = call(inbox_views.queue_counts, actor)
    c1, c2, c3 = st.columns(3)
    c1.metric("Unassigned", counts.get("unassigned", 0))
    c2.metric("Open", counts.get("all_open", 0))
    c3.metric("Agents online", sum(1 for a in agents if a.presence == "ONLINE"))
    st.dataframe(
        [
            {"Agent": a.name, "Email": a.email, "Role": a.role, "Presence": a.presence or "OFFLINE",
             "Assigned now": a.open_assigned}
            for a in agents
        ],
        hide_index=True, use_container_width=True,
    )


def page() -> None:
    actor = signin.page_actor()
    st.title("Assignment")
    _board(actor)
    st.subheader("Open conversations")
    open_items = call(inbox_views.list_conversations, actor, queue="all", status="OPEN", limit=100).items
    if not open_items:
        st.info("No open conversations.")
        return
    agents = call(inbox_views.list_agents, actor)
    st.dataframe(
        [
            {"Id": c.id, "Customer": c.contact_name or c.contact_handle, "Channel": c.channel_name,
             "Status": c.status, "Agent": c.assigned_user_name or "", "Unread": c.unread_count}
            for c in open_items
        ],
        hide_index=True, use_container_width=True,
    )
    with st.form("reassign"):
        target_conv = st.selectbox("Conversation", open_items,
                                   format_func=lambda c: f"#{c.id} {c.contact_name or c.contact_handle}")
        target_agent = st.selectbox("Assign to", agents, format_func=lambda a: f"{a.name} ({a.presence or 'OFFLINE'})")
        if st.form_submit_button("Reassign") and target_conv and target_agent:
            try:
                call(conv.reassign, actor, target_conv.id, target_agent.id)
                st.success(f"Conversation #{target_conv.id} is now with {target_agent.name}.")
            except SwitchboardError as exc:
                st.error(str(exc))
