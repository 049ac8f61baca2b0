"""Streamlit entrypoint: `switchboard app` (or `streamlit run app/main.py`).

The navigation is one table, :data:`PAGES`: each page with the :class:`~switchboard.policy.Action` it
needs. A signed-in user is offered exactly the pages whose action their role allows
(:func:`switchboard.policy.allows`, the same table the services enforce with ``require``); a page
that is not offered is not registered, so its URL opens the default page instead. Nobody signed in
gets only the sign-in pages (app/signin.py). To add a page: a view in app/views with a ``page()``
or ``render()`` function, and one row here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

if __package__ in (None, ""):
    # `streamlit run app/main.py` executes this file as a script: make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import signin  # noqa: E402
from switchboard.policy import Action, allows  # noqa: E402
from switchboard.types import Role  # noqa: E402


@dataclass(frozen=True, slots=True)
class PageSpec:
    """One page of the navigation: where it sits, and the action a role needs to be offered it."""

    section: str
    title: str
    url_path: str
    icon: str
    view: str  # "module:function" in app/views, imported when offered
    action: Action | None  # None: every signed-in user
    optional: bool = False  # an optional part (analytics, Telegram): absent modules simply don't show


PAGES: tuple[PageSpec, ...] = (
    PageSpec("Work", "Inbox", "inbox", "📥", "inbox:page", Action.WORK_INBOX),
    PageSpec("Work", "New message", "new-message", "✉️", "new_message:page", Action.WORK_INBOX),
    PageSpec("Work", "Assignment", "assignment", "🧭", "assignment:page", Action.ASSIGN),
    PageSpec("Work", "Outbox", "outbox", "📤", "outbox:page", Action.MANAGE_OUTBOX),
    PageSpec("Work", "Saved replies", "saved-replies", "💬", "saved_replies:page", Action.MANAGE_SAVED_REPLIES),
    PageSpec("Analytics", "Analytics", "analytics", "📈", "analytics:page", Action.VIEW_ANALYTICS,
             optional=True),
    PageSpec("Admin", "Channels & health", "channels", "🔌", "admin_channels:page", Action.MANAGE_CHANNELS),
    PageSpec("Admin", "Organization", "organization", "🏢", "admin_org:page", Action.MANAGE_ORGANIZATION),
    PageSpec("Admin", "Telegram login", "telegram-login", "✈️", "telegram_login:page", Action.MANAGE_CHANNELS,
             optional=True),
    PageSpec("Admin", "Users & access", "admin-users", ":material/group:", "admin_users:render",
             Action.MANAGE_USERS),
    PageSpec("Admin", "API keys", "api-keys", ":material/key:", "admin_api_keys:page", Action.MANAGE_API_KEYS),
    PageSpec("Admin", "Event webhooks", "event-webhooks", ":material/webhook:", "admin_event_webhooks:page",
             Action.MANAGE_WEBHOOKS),
    PageSpec("Admin", "Audit log", "audit-log", ":material/history:", "audit:render", Action.VIEW_AUDIT_LOG),
    PageSpec("Account", "My account", "account", ":material/account_circle:", "account:render", None),
)


def offered(role: Role) -> list[PageSpec]:
    """The pages a role is offered, in navigation order (the first is the default page)."""
    return [p for p in PAGES if p.action is None or allows(role, p.action)]


def view_of(spec: PageSpec) -> Callable[[], Any] | None:
    module, _, function = spec.view.partition(":")
    try:
        return getattr(importlib.import_module(f"app.views.{module}"), function)
    except ImportError:
        if spec.optional:
            return None
        raise


def page_of(url_path: str) -> st.Page:
    """The navigation's page at ``url_path`` (for ``st.switch_page`` from another page)."""
    spec = next(p for p in PAGES if p.url_path == url_path)
    view = view_of(spec)
    assert view is not None
    return st.Page(view, title=spec.title, icon=spec.icon, url_path=spec.url_path)


def navigation(role: Role) -> dict[str, list[st.Page]]:
    """``st.navigation`` sections for a role, built from :data:`PAGES`."""
    groups: dict[str, list[st.Page]] = {}
    for spec in offered(role):
        view = view_of(spec)
        if view is not None:
            groups.setdefault(spec.section, []).append(st.Page(
                view, title=spec.title, icon=spec.icon, url_path=spec.url_path, default=not groups))
    return groups


def _pages() -> Any:
    actor = signin.current_actor()
    if actor is None:
        # A bookmarked or shared link (…/analytics) shows the sign-in form instead of "page not found";
        # after signing in, the same URL opens the page itself (if the role is offered it).
        from app.views import login

        hidden = [st.Page(login.render, title="Sign in", url_path=p.url_path, visibility="hidden")
                  for p in PAGES]
        return st.navigation(signin.login_pages() + hidden)
    groups = navigation(actor.role)
    signin.render_user_menu()
    if allows(actor.role, Action.MANAGE_CHANNELS):  # refused or expiring credentials, on every page
        from app.views.channel_manage import credential_banner

        credential_banner(actor)
    return st.navigation(groups)


def _run() -> None:
    st.set_page_config(page_title="Switchboard", page_icon="💬", layout="wide")
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


if __name__ == "__main__":
    _run()
