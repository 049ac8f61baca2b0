"""Streamlit entrypoint: `switchboard app` (or `streamlit run app/main.py`).

Navigation is built per rerun from the logged-in user's role (`st.navigation`): nobody logged in
sees only the login pages; agents see the inbox; managers also see assignment and analytics;
admins also see channels, users and the audit log.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import streamlit as st

if __package__ in (None, ""):
    # `streamlit run app/main.py` executes this file as a script: make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import signin  # noqa: E402
from app.views import admin_channels, admin_org, assignment, inbox  # noqa: E402

PROTECTED_PATHS = ("inbox", "assignment", "analytics", "channels", "organization", "telegram-login", "account",
                   "admin-users", "audit-log")

st.set_page_config(page_title="Switchboard", page_icon="💬", layout="wide")


def _optional_page(module: str) -> Any:
    """Pages of optional parts (analytics, Telegram) — absent modules simply don't show."""
    try:
        return importlib.import_module(f"app.views.{module}").page
    except ImportError:
        return None


def _pages() -> Any:
    actor = signin.current_actor()
    if actor is None:
        # A bookmarked or shared link (…/analytics) shows the sign-in form instead of "page not found";
        # after signing in, the same URL opens the page itself.
        from app.views import login

        hidden = [st.Page(login.render, title="Sign in", url_path=path, visibility="hidden")
                  for path in PROTECTED_PATHS]
        return st.navigation(signin.login_pages() + hidden)
    work = [st.Page(inbox.page, title="Inbox", icon="📥", url_path="inbox", default=True)]
    groups: dict[str, list[st.Page]] = {"Work": work}
    if actor.role in ("admin", "manager"):
        work.append(st.Page(assignment.page, title="Assignment", icon="🧭", url_path="assignment"))
        analytics = _optional_page("analytics")
        if analytics is not None:
            groups["Analytics"] = [st.Page(analytics, title="Response times", icon="📈", url_path="analytics")]
    if actor.role == "admin":
        admin = [st.Page(admin_channels.page, title="Channels & health", icon="🔌", url_path="channels"),
                 st.Page(admin_org.page, title="Organization", icon="🏢", url_path="organization")]
        telegram = _optional_page("telegram_login")
        if telegram is not None:
            admin.append(st.Page(telegram, title="Telegram login", icon="✈️", url_path="telegram-login"))
        groups["Admin"] = admin + signin.admin_pages()
    groups["Account"] = signin.account_pages()
    signin.render_user_menu()
    return st.navigation(groups)


def _run() -> None:
    try:
        _pages().run()
    except Exception as exc:
        from switchboard.db.engine import database_problem

        reason = database_problem(exc)
        if reason is None:
            raise
        # the database is down or not migrated: say so (the operator's log has the details)
        st.error(f"Switchboard cannot work right now: {reason}. Your draft and your sign-in are kept; "
                 "try again in a moment.")
        if st.button("Try again", key="retry_database"):
            st.rerun()


_run()
