"""Sign-in state of one Streamlit session (one browser tab), and the signed-out pages.

"Session" is overloaded: this module keeps a *login session* (``login_sessions`` row,
switchboard/auth/login_sessions.py) in a *Streamlit session* (``st.session_state``). Contract used by
``app/main.py`` and the views::

    actor = signin.current_actor()          # None -> st.navigation(signin.login_pages())
    signin.logout(); signin.current_user_name(); signin.render_user_menu()

How a login survives a browser refresh (a refresh is a new Streamlit session): after login the app
writes a cookie ``sb_session`` = session token + expiry, HMAC-signed with a key derived from
SWITCHBOARD_SECRET_KEY, valid for the idle timeout and re-issued while the user is active. A new
session reads it once through ``st.context.cookies`` and re-validates the server-side
``login_sessions`` row. Every rerun re-checks that row (at most every ``RECHECK_SECONDS``), so a logout
in another tab, a disabled account or an expired session shows the login again. Clearing the login
keeps ``draft_*`` entries of ``st.session_state`` (reply drafts) for the same user.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import streamlit as st
from streamlit.errors import StreamlitAPIException
from streamlit.runtime.scriptrunner import get_script_run_ctx

from app import deps
from switchboard.auth.login import PendingLogin, Refusal
from switchboard.auth.login_sessions import (
    COOKIE_NAME,
    SessionInfo,
    SessionToken,
    check_session,
    read_cookie,
    revoke_session,
    sign_cookie,
)
from switchboard.errors import AuthError, SwitchboardError
from switchboard.policy import Action, refusal
from switchboard.types import Actor

T = TypeVar("T")

RECHECK_SECONDS = 3.0
PREFIX = "sb_auth_"
TOKEN = PREFIX + "token"
ACTOR = PREFIX + "actor"
NAME = PREFIX + "name"
CHECKED_AT = PREFIX + "checked_at"
RESTORE_TRIED = PREFIX + "restore_tried"
COOKIE_VALUE = PREFIX + "cookie_value"
COOKIE_ISSUED = PREFIX + "cookie_issued"
CLEAR_COOKIE = PREFIX + "clear_cookie"
PENDING = PREFIX + "pending"  # PendingLogin between the password step and enrollment
RECOVERY_CODES = PREFIX + "recovery_codes"  # shown once after enrollment
AFTER_ENROLL = PREFIX + "after_enroll"  # SessionToken activated once the codes were acknowledged
FLASH = PREFIX + "flash"  # why the login page is shown again
DRAFT_OWNER = PREFIX + "draft_owner"
EMITTED_RUN = PREFIX + "emitted_run"
DRAFT_PREFIX = "draft_"

_KEEP_ON_CLEAR = (DRAFT_OWNER, CLEAR_COOKIE, RESTORE_TRIED)


# --- state ------------------------------------------------------------------------------------------
def _clear_login_state() -> None:
    """Forget the login and everything else of this session except reply drafts."""
    for key in list(st.session_state.keys()):
        name = str(key)
        if name.startswith(DRAFT_PREFIX) or name in _KEEP_ON_CLEAR:
            continue
        del st.session_state[key]


def _cookie_ttl() -> timedelta:
    return timedelta(minutes=deps.settings().session_idle_minutes)


def _issue_cookie(token: str) -> None:
    now = datetime.now(UTC)
    ss = st.session_state
    ss[COOKIE_VALUE] = sign_cookie(token, now + _cookie_ttl(), deps.secret_key())
    ss[COOKIE_ISSUED] = now.timestamp()
    ss.pop(CLEAR_COOKIE, None)


def _remember(info: SessionInfo | SessionToken, token: str) -> None:
    ss = st.session_state
    owner = ss.get(DRAFT_OWNER)
    if owner is not None and owner != info.actor.user_id:
        for key in [k for k in ss if str(k).startswith(DRAFT_PREFIX)]:
            del ss[key]  # drafts of someone else never survive into another login
    ss[DRAFT_OWNER] = info.actor.user_id
    ss[TOKEN] = token
    ss[ACTOR] = info.actor
    ss[NAME] = info.name
    ss[CHECKED_AT] = time.monotonic()


def sign_in(token: SessionToken) -> None:
    """Make a fresh SessionToken the login of this Streamlit session (and of the browser, via cookie)."""
    ss = st.session_state
    for key in (PENDING, RECOVERY_CODES, AFTER_ENROLL, FLASH):
        ss.pop(key, None)
    _remember(token, token.token)
    _issue_cookie(token.token)


def set_pending(pending: PendingLogin | None) -> None:
    if pending is None:
        st.session_state.pop(PENDING, None)
    else:
        st.session_state[PENDING] = pending


def pending_login() -> PendingLogin | None:
    value = st.session_state.get(PENDING)
    return value if isinstance(value, PendingLogin) else None


def user_agent() -> str | None:
    try:
        return st.context.headers.get("User-Agent")
    except Exception:
        return None


def client_address() -> str | None:
    """The browser's address, for the per-client sign-in throttle (switchboard/auth/client_throttle.py).
    Behind a reverse proxy (``TRUST_FORWARDED_FOR=true``) the last X-Forwarded-For entry: the one
    our proxy added; the ones before it are whatever the client sent."""
    try:
        if deps.settings().trust_forwarded_for:
            forwarded = [x.strip() for x in (st.context.headers.get("X-Forwarded-For") or "").split(",")]
            if forwarded[-1]:
                return forwarded[-1]
        address = st.context.ip_address
    except Exception:
        return None
    return address if isinstance(address, str) else None  # (AppTest has no browser: no address)


def _first_call_this_run() -> bool:
    """True once per script run (pages may call current_actor() again after app/main.py did)."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return True
    marker = id(ctx.cursors)  # a new dict per run, allocated while the previous one is still alive
    if st.session_state.get(EMITTED_RUN) == marker:
        return False
    st.session_state[EMITTED_RUN] = marker
    return True


def _emit_cookie_script() -> None:
    """Write or delete the login cookie in the browser (st.context.cookies is read-only)."""
    ss = st.session_state
    if not _first_call_this_run():
        return
    if ss.get(TOKEN) and ss.get(COOKIE_VALUE):
        value = json.dumps(str(ss[COOKIE_VALUE]))
        max_age = int(_cookie_ttl().total_seconds())
        js = (f"document.cookie = '{COOKIE_NAME}=' + {value} + '; Path=/; Max-Age={max_age}; SameSite=Strict'"
              " + (location.protocol === 'https:' ? '; Secure' : '');")
    elif ss.get(CLEAR_COOKIE):
        js = f"document.cookie = '{COOKIE_NAME}=; Path=/; Max-Age=0; SameSite=Strict';"
    else:
        return
    st.html(f"<script>{js}</script>", unsafe_allow_javascript=True, width="content")


def _restore_from_cookie() -> str | None:
    try:
        raw = st.context.cookies.get(COOKIE_NAME)
    except Exception:
        raw = None
    if not raw:
        return None
    token = read_cookie(raw, datetime.now(UTC), deps.secret_key())
    if token is None:
        st.session_state[CLEAR_COOKIE] = True
    return token


# --- the contract -----------------------------------------------------------------------------------
def _keep_drafts() -> None:
    """Re-assign ``draft_*`` values each run so Streamlit keeps them while their widget is not shown
    (for example while the login page replaces the inbox after an expiry)."""
    ss = st.session_state
    for key in [k for k in ss if str(k).startswith(DRAFT_PREFIX)]:
        with contextlib.suppress(StreamlitAPIException):  # buttons/uploads cannot be set: not drafts
            ss[key] = ss[key]


def current_actor() -> Actor | None:
    """The signed-in user of this session, restored from the cookie after a refresh; None if signed out.

    The server-side session is re-validated at most every RECHECK_SECONDS (one indexed UPDATE that also
    moves the idle deadline); when it is revoked, expired or the user was disabled, the login state is
    cleared (drafts kept) and the login page shows why.
    """
    ss = st.session_state
    _keep_drafts()
    token = ss.get(TOKEN)
    restored = False
    if token is None and not ss.get(RESTORE_TRIED):
        ss[RESTORE_TRIED] = True
        token = _restore_from_cookie()
        restored = token is not None
    actor: Actor | None = None
    if token is not None:
        actor = ss.get(ACTOR) if not restored else None
        fresh = time.monotonic() - float(ss.get(CHECKED_AT, 0.0)) < RECHECK_SECONDS
        if actor is None or not fresh:
            try:
                info = deps.call(check_session, token)
            except AuthError as exc:
                _clear_login_state()
                ss[CLEAR_COOKIE] = True
                if not restored or "expired" in str(exc) or "disabled" in str(exc):
                    ss[FLASH] = str(exc)
                actor = None
            else:
                _remember(info, token)
                actor = info.actor
                issued = float(ss.get(COOKIE_ISSUED, 0.0))
                if restored or not ss.get(COOKIE_VALUE) or \
                        time.time() - issued > _cookie_ttl().total_seconds() / 4:
                    _issue_cookie(token)
    _emit_cookie_script()
    return actor




def attempt(service: Callable[..., T | Refusal], *args: Any, **kwargs: Any) -> T | None:
    """Run one sign-in service through ``deps.call`` (which commits, so a counted refusal is kept) and
    show its refusal — a returned :class:`Refusal` or an error — as the one same-looking message; None
    when refused."""
    try:
        result = deps.call(service, *args, **kwargs)
    except SwitchboardError as exc:
        st.error(str(exc), icon=":material/block:")
        return None
    if isinstance(result, Refusal):
        st.error(result.message, icon=":material/block:")
        return None
    return result


def credentials_given(email: str, password: str) -> bool:
    """Both fields filled in; otherwise say so (nothing is checked or counted for an empty form)."""
    if email.strip() and password:
        return True
    st.error("Enter your email and password.")
    return False

def page_actor(action: Action | None = None) -> Actor:
    """The signed-in actor, for a page: stops this script run when nobody is signed in (``app/main.py``
    then offers only the sign-in pages on the next run), or, given ``action``, when the actor's role does
    not grant it (the page says so; its services would refuse anyway)."""
    actor = current_actor()
    if actor is None:
        st.stop()
    reason = None if action is None else refusal(actor.role, action)
    if reason is not None:
        st.error(reason[0].upper() + reason[1:] + ".")
        st.stop()
    return actor

def current_user_name() -> str:
    name = st.session_state.get(NAME)
    actor = st.session_state.get(ACTOR)
    return str(name or (actor.email if isinstance(actor, Actor) else ""))


def current_token() -> str | None:
    token = st.session_state.get(TOKEN)
    return str(token) if token else None


def logout() -> None:
    """End the server-side session (every tab of every browser using it) and clear this session's login.

    Safe in a button callback; it does not call st.rerun().
    """
    token = st.session_state.get(TOKEN)
    if token:
        deps.call(revoke_session, token)
    _clear_login_state()
    st.session_state[CLEAR_COOKIE] = True
    st.session_state[FLASH] = "You are signed out."


def flash(message: str | None = None) -> str | None:
    """Set (with a message) or pop (without) the notice shown on the login page."""
    if message is not None:
        st.session_state[FLASH] = message
        return message
    value = st.session_state.pop(FLASH, None)
    return str(value) if value else None


# --- pages ------------------------------------------------------------------------------------------
def _page(target: Any, title: str, url_path: str, icon: str, default: bool = False) -> st.Page:
    return st.Page(target, title=title, url_path=url_path, icon=icon, default=default)


def login_page(default: bool = True) -> st.Page:
    from app.views import login

    return _page(login.render, "Sign in", "login", ":material/login:", default)


def enroll_page() -> st.Page:
    from app.views import enroll

    return _page(enroll.render, "Set up two-factor", "enroll", ":material/qr_code_2:")


def invite_page() -> st.Page:
    from app.views import enroll

    return _page(enroll.render_invite, "Accept invite", "invite", ":material/mail:")


def recovery_page() -> st.Page:
    from app.views import recovery

    return _page(recovery.render, "Use a recovery code", "recovery", ":material/key:")


def login_pages() -> list[st.Page]:
    """Pages for a signed-out session: login (default), enrollment, invite acceptance, recovery code."""
    return [login_page(), enroll_page(), invite_page(), recovery_page()]


def render_user_menu() -> None:
    """Optional sidebar block: who is signed in and a sign-out button (for app/main.py)."""
    with st.sidebar:
        st.caption(f"Signed in as {current_user_name()}")
        st.button("Sign out", key=PREFIX + "sidebar_logout", on_click=logout)
