"""Streamlit entrypoint: `switchboard app` (or `streamlit run app/main.py`).

Navigation is built per rerun from the logged-in user's role (`st.navigation`): nobody logged in
sees only the login pages; agents see the inbox; managers also see assignment and analytics;
admins also see channels, users and the audit log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

if __package__ in (None, ""):
    # `streamlit run app/main.py` executes this file as a script: make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import session  # noqa: E402
from app.views import admin_channels, assignment, inbox  # noqa: E402

st.set_page_config(page_title="Switchboard", page_icon="💬", layout="wide")


def _pages() -> st.navigation:  # type: ignore[valid-type]
    actor = session.current_actor()
    if actor is None:
        return st.navigation(session.login_pages())
    work = [st.Page(inbox.page, title="Inbox", icon="📥", url_path="inbox", default=True)]
    groups: dict[str, list[st.Page]] = {"Work": work}
    if actor.role in ("admin", "manager"):
        work.append(st.Page(assignment.page, title="Assignment", icon="🧭", url_path="assignment"))
        try:
            from app.views import analytics

            groups["Analytics"] = [st.Page(analytics.page, title="Response times", icon="📈",
                                           url_path="analytics")]
        except ImportError:
            pass
    if actor.role == "admin":
        admin = [st.Page(admin_channels.page, title="Channels & health", icon="🔌", url_path="channels")]
        try:
            from app.views import telegram_login

            admin.append(st.Page(telegram_login.page, title="Telegram login", icon="✈️",
                                 url_path="telegram-login"))
        except ImportError:
            pass
        groups["Admin"] = admin + session.admin_pages()
    groups["Account"] = session.account_pages()
    return st.navigation(groups)


_pages().run()
