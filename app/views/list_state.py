"""What the inbox's conversation list keeps between its refreshes, in one place for everything that
changes a conversation (the inbox's buttons, the reply box, files, templates, the New message page)."""

from __future__ import annotations

import streamlit as st

SEARCH_KEPT = "_search_kept"  # session_state: (the list's arguments, when, the page) of the last search
QUEUE_WANTED = "_queue_wanted"  # session_state: the queue an action asked the list to show next


def changed() -> None:
    """The agent just changed a conversation: the list reads it again when drawn next, even during a
    search whose results it would otherwise keep for a while."""
    st.session_state.pop(SEARCH_KEPT, None)


def show_queue(queue: str) -> None:
    """Show ``queue`` when the list is drawn next (after accepting: Mine)."""
    st.session_state[QUEUE_WANTED] = queue
