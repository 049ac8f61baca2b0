"""Admin: the audit log of logins, failures, lockouts, user and permission changes."""

from __future__ import annotations

import streamlit as st

from app import deps, signin
from app.text import in_words
from switchboard.auth.audit import list_audit
from switchboard.policy import Action

CHANGES = ("organization.updated", "user.capacity_changed")  # their details are {setting: [before, after]}
FILTERS = {"everything": None, "sign-ins and failures": "auth.", "user changes": "user.",
           "permissions": "permission."}


BEFORE = "audit_before"  # session_state: show the entries older than this id (None: the newest)


def _newest() -> None:
    st.session_state.pop(BEFORE, None)


def render() -> None:
    actor = signin.page_actor(Action.VIEW_AUDIT_LOG)
    st.title("Audit log")
    c1, c2 = st.columns([2, 1])
    choice = c1.selectbox("Show", list(FILTERS), key="audit_filter", on_change=_newest)
    limit = c2.number_input("Rows", min_value=10, max_value=1000, value=200, step=50, key="audit_limit",
                            on_change=_newest)
    before = st.session_state.get(BEFORE)
    entries = deps.call(list_audit, actor, limit=int(limit), action_prefix=FILTERS[choice], before_id=before)
    if before is not None:
        st.caption(f"Entries older than #{before}.")
        st.button("← Newest entries", key="audit_newest", on_click=_newest)
    if not entries:
        st.caption("Nothing older." if before is not None else "Nothing recorded yet.")
        return
    st.dataframe(
        [{"#": e.id, "time (UTC)": e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"), "action": e.action,
          "by": e.actor_email or "", "target": e.target or "",
          "details": in_words(e.details, changes=e.action in CHANGES)} for e in entries],
        hide_index=True, width="stretch",
    )
    if len(entries) == int(limit):  # maybe more: the next page starts below the last one shown
        st.button("Older entries →", key="audit_older", on_click=st.session_state.__setitem__,
                  args=(BEFORE, entries[-1].id))
