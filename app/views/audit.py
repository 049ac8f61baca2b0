"""Admin: the audit log — sign-ins and failures, user and permission changes, channels, API keys and
event webhooks, sends settled or cancelled by hand, saved replies, settings, imports and erasures —
narrowed to one category, one person or up to a day, newest first, a page at a time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from app import deps, signin
from app.text import in_words
from switchboard.auth.admin import list_users
from switchboard.auth.audit import CATEGORIES, list_audit
from switchboard.policy import Action

CHANGES = ("organization.updated", "user.capacity_changed")  # their details are {setting: [before, after]}
EVERYTHING = "everything"
ANYONE = "anyone"


BEFORE = "audit_before"  # session_state: show the entries older than this id (None: the newest)


def _newest() -> None:
    st.session_state.pop(BEFORE, None)


def render() -> None:
    actor = signin.page_actor(Action.VIEW_AUDIT_LOG)
    st.title("Audit log")
    people = {f"{u.name} <{u.email}>" if u.name else u.email: u.id for u in deps.call(list_users, actor)}
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    choice = c1.selectbox("Show", [EVERYTHING, *CATEGORIES], key="audit_filter", on_change=_newest)
    by = c2.selectbox("By", [ANYONE, *sorted(people, key=str.casefold)], key="audit_by", on_change=_newest)
    day: date | None = c3.date_input("Up to (UTC)", value=None, key="audit_until", on_change=_newest,
                                     help="Show what happened up to the end of this day (times are UTC). "
                                          "Empty: up to now.")
    limit = c4.number_input("Rows", min_value=10, max_value=1000, value=200, step=50, key="audit_limit",
                            on_change=_newest)
    until = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC) if day else None
    before = st.session_state.get(BEFORE)
    entries = deps.call(list_audit, actor, limit=int(limit), category=None if choice == EVERYTHING else choice,
                        by_user_id=people.get(by), before_id=before, until=until)
    upto = f"up to the end of {day:%a %d %b %Y} (UTC)" if day else ""
    if before is not None:
        st.caption(f"Entries older than #{before}{', ' + upto if upto else ''}.")
        st.button("← Newest entries", key="audit_newest", on_click=_newest)
    elif upto:
        st.caption(f"Entries {upto}.")
    if not entries:
        filtered = choice != EVERYTHING or by != ANYONE or day is not None
        st.caption("Nothing older." if before is not None else "No entries match." if filtered
                   else "Nothing recorded yet.")
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
