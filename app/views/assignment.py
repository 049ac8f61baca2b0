"""Manager: the waiting list (longest wait first), the agents with presence, load and capacity,
reassignment and auto-assignment, on one page.

Capacity (how many conversations auto-assignment hands one agent at once) is changed with
``set_max_concurrent``; auto-assignment is an organization setting: admins switch it here (the same
service as the Organization page), managers see whether it is on."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import streamlit as st

from app import signin
from app.deps import act, act_and_rerun, call, show_outcome
from app.text import visible, when, zone
from switchboard.domain.messaging_window import describe_duration
from switchboard.policy import Action, allows
from switchboard.services import conversations as conv
from switchboard.services import inbox_views
from switchboard.services.assignment import set_max_concurrent
from switchboard.services.inbox_views import AgentView, channel_label, waiting_since
from switchboard.services.organizations import OrganizationView, get_organization, update_settings
from switchboard.types import Actor

REASSIGN_LISTED = 200  # open conversations offered without a search (the most recently active)
PRESENCE = {"ONLINE": "🟢 online", "AWAY": "🟡 away", "OFFLINE": "⚪ offline"}


def _agent(a: AgentView) -> str:
    return f"{a.name} ({PRESENCE.get(a.presence, a.presence).split(' ', 1)[1]}, {a.open_assigned}/{a.max_concurrent})"


@st.fragment(run_every=10)
def _board(actor: Actor, tz: tzinfo) -> None:
    agents = call(inbox_views.list_agents, actor)
    waiting = call(inbox_views.waiting_conversations, actor, limit=200)
    counts = call(inbox_views.queue_counts, actor)
    now = datetime.now(UTC)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Waiting", counts.get("unassigned", 0))
    c2.metric("Longest wait", describe_duration(now - waiting_since(waiting[0])) if waiting else "—")
    c3.metric("Open", counts.get("all_open", 0))
    c4.metric("Agents online", sum(1 for a in agents if a.presence == "ONLINE"))

    st.subheader("Waiting for an agent")
    if not waiting:
        st.success("Nobody is waiting.")
    else:
        st.dataframe(
            [{"Waiting": describe_duration(now - waiting_since(c)),
              "Customer": visible(c.contact_name or c.contact_handle),
              "Channel": channel_label(c.channel_name, c.provider),
              "Last message": visible((c.last_message_preview or "")[:80]), "Unread": c.unread_count,
              "Open": f"/inbox?c={c.id}"}
             for c in waiting],
            hide_index=True, width="stretch", key="waiting_table",
            column_config={"Open": st.column_config.LinkColumn("Open", display_text="Open thread")},
        )

    st.subheader("Agents")
    active = [a for a in agents if a.status == "active"]
    st.dataframe(
        [{"Agent": a.name, "Role": a.role, "Presence": PRESENCE.get(a.presence, a.presence),
          "Assigned now": a.open_assigned, "Capacity": a.max_concurrent,
          "Load": f"{a.open_assigned}/{a.max_concurrent}" + (" · full" if a.open_assigned >= a.max_concurrent else ""),
          "Last seen": when(a.last_heartbeat_at, tz, now.astimezone(tz).date())}
         for a in active],
        hide_index=True, width="stretch", key="agents_table",
    )


def _capacity(actor: Actor, agents: list[AgentView]) -> None:
    st.subheader("Capacity")
    st.caption("How many conversations auto-assignment hands an agent at once (0: none). Agents may still "
               "accept more themselves.")
    if not agents:
        st.caption("No agents yet.")
        return
    c1, c2, c3 = st.columns([3, 2, 1], vertical_alignment="bottom")
    who = c1.selectbox("Agent", agents, format_func=_agent, key="capacity_agent")
    assert who is not None
    value = c2.number_input("Concurrent conversations", min_value=0, max_value=1000, value=who.max_concurrent,
                            step=1, key=f"capacity_value_{who.id}")
    if c3.button("Save capacity", key="capacity_save"):
        act_and_rerun(f"{who.name} now takes up to {int(value)} conversations at once.",
                      set_max_concurrent, actor, who.id, int(value))


def _reassign(actor: Actor, agents: list[AgentView]) -> None:
    st.subheader("Reassign")
    term = st.text_input("Find a conversation", key="reassign_search", placeholder="Customer, number or message text",
                         help="Without a search the list holds the most recently active open conversations.")
    listed = call(inbox_views.list_conversations, actor, queue="all", status="OPEN", search=term or None,
                  limit=REASSIGN_LISTED)
    open_items = listed.items
    if not open_items:
        st.info(f"No open conversation matches {term!r}." if term else "No open conversations.")
        return
    if listed.next_cursor:
        st.caption(f"The {len(open_items)} most recently active open conversations"
                   + (" that match" if term else "") + ": search to find another one.")
    c1, c2, c3 = st.columns([3, 3, 1], vertical_alignment="bottom")
    target_conv = c1.selectbox(
        "Conversation", open_items, key="reassign_conversation",
        format_func=lambda c: visible(f"#{c.id} {c.contact_name or c.contact_handle} · "
                                      f"{channel_label(c.channel_name, c.provider)} · "
                                      + (f"with {c.assigned_user_name}" if c.assigned_user_name else "waiting")))
    target_agent = c2.selectbox("Assign to", agents, format_func=_agent, key="reassign_agent")
    if c3.button("Reassign", key="reassign_go") and target_conv and target_agent:
        act_and_rerun(f"Conversation #{target_conv.id} is now with {target_agent.name}.",
                      conv.reassign, actor, target_conv.id, target_agent.id)


def _auto_assign(actor: Actor, org: OrganizationView) -> None:
    st.subheader("Auto-assignment")
    explain = ("New and reopened conversations go round-robin to online agents below their capacity "
               "(the maintenance flow runs every minute).")
    if allows(actor.role, Action.MANAGE_ORGANIZATION):
        st.toggle("Auto-assign new and reopened conversations", value=org.auto_assign, key="auto_assign",
                  help=explain, on_change=_set_auto_assign, args=(actor,))
        return
    st.text(f"Auto-assignment is {'on' if org.auto_assign else 'off'}. {explain}")
    st.caption("Only admins switch it (here or on the Organization page).")


def _set_auto_assign(actor: Actor) -> None:
    on = bool(st.session_state.get("auto_assign"))
    if not act("Auto-assignment " + ("on." if on else "off."), update_settings, actor, auto_assign=on):
        st.session_state["auto_assign"] = not on  # refused: the toggle shows what is stored


def page() -> None:
    actor = signin.page_actor(Action.ASSIGN)
    st.title("Assignment")
    show_outcome()
    org = call(get_organization, actor)
    _board(actor, zone(org.timezone))
    agents = [a for a in call(inbox_views.list_agents, actor) if a.status == "active"]
    _capacity(actor, agents)
    _reassign(actor, agents)
    _auto_assign(actor, org)
