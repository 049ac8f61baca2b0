"""Manager: the organization's saved replies (canned responses) — add, change, delete.

Agents insert them from the reply box by short code; ``{name}``-style placeholders are filled with
the customer's name there (the list of placeholders is in :mod:`switchboard.domain.saved_replies`).
"""

from __future__ import annotations

import streamlit as st

from app import signin
from app.deps import act_and_rerun, call, show_outcome
from switchboard.domain.saved_replies import PLACEHOLDERS
from switchboard.policy import Action
from switchboard.services import saved_replies
from switchboard.types import Actor

HELP = "Placeholders: " + "; ".join(f"{{{name}}} — {what}" for name, what in PLACEHOLDERS.items()) + \
    ". Write a literal brace as {{ or }}."


def _add(actor: Actor) -> None:
    with st.expander("Add a saved reply", expanded=False), st.form("add_saved_reply"):
        code = st.text_input("Short code (e.g. thanks)", key="new_reply_code")
        title = st.text_input("Title", key="new_reply_title")
        body = st.text_area("Text", key="new_reply_body", help=HELP, placeholder="Hi {first_name}, …")
        if st.form_submit_button("Add"):
            act_and_rerun(f"Saved reply /{code.strip().lower()} added.", saved_replies.create_saved_reply, actor, code=code,
                title=title, body=body)


def _edit(actor: Actor, replies: list[saved_replies.SavedReplyView]) -> None:
    by_id = {r.id: r for r in replies}
    picked = st.selectbox("Change or delete", list(by_id), key="edit_reply_pick",
                          format_func=lambda i: f"/{by_id[i].code} · {by_id[i].title}")
    if picked is None:
        return
    reply = by_id[picked]
    with st.form(f"edit_saved_reply_{reply.id}"):
        code = st.text_input("Short code", value=reply.code, key=f"edit_code_{reply.id}")
        title = st.text_input("Title", value=reply.title, key=f"edit_title_{reply.id}")
        body = st.text_area("Text", value=reply.body, key=f"edit_body_{reply.id}", help=HELP)
        save, delete = st.columns(2)
        if save.form_submit_button("Save"):
            act_and_rerun(f"Saved reply /{code.strip().lower()} saved.", saved_replies.update_saved_reply, actor, reply.id,
                code=code, title=title, body=body)
        if delete.form_submit_button("Delete"):
            act_and_rerun(f"Saved reply /{reply.code} deleted.", saved_replies.delete_saved_reply, actor, reply.id)


def page() -> None:
    actor = signin.page_actor(Action.MANAGE_SAVED_REPLIES)
    st.title("Saved replies")
    show_outcome()
    st.caption("Agents insert these from the reply box. " + HELP)
    replies = call(saved_replies.list_saved_replies, actor)
    if replies:
        st.dataframe([{"Code": f"/{r.code}", "Title": r.title, "Text": r.body[:200], "By": r.created_by or "",
                       "Changed": r.updated_at.strftime("%Y-%m-%d %H:%M")} for r in replies],
                     hide_index=True, width="stretch")
    else:
        st.info("No saved replies yet. Add the answers your team gives again and again.")
    _add(actor)
    if replies:
        _edit(actor, replies)
