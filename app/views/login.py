"""Sign-in page: email + password + 6-digit code; first login leads to TOTP enrollment.

Every refusal looks the same for every address (switchboard/auth/login.py): the page shows the
:class:`~switchboard.auth.login.Refusal` text as it came, after ``deps.call`` committed the counter.
"""

from __future__ import annotations

from typing import cast

import streamlit as st

from app import deps, signin
from switchboard.auth.login import PendingLogin, login
from switchboard.auth.login_sessions import SessionToken


def render() -> None:
    st.title("Sign in to Switchboard")
    notice = signin.flash()
    if notice:
        st.warning(notice, icon=":material/info:")
    with st.form("login_form", clear_on_submit=False):
        email = st.text_input("Email", key="login_email", autocomplete="username")
        password = st.text_input("Password", type="password", key="login_password",
                                 autocomplete="current-password")
        code = st.text_input("6-digit code from your authenticator app", key="login_code", max_chars=7,
                             autocomplete="one-time-code",
                             help="First sign-in? Leave it empty: you will set up your authenticator next. "
                                  "A code works once: if you just used one, wait for the next.")
        submitted = st.form_submit_button("Sign in", type="primary", key="login_submit")
    st.page_link(signin.recovery_page(), label="Lost your authenticator? Use a recovery code")
    if not submitted:
        return
    if not signin.credentials_given(email, password):
        return
    # mypy cannot subtract Refusal from a three-way union: say what is left
    result = cast("PendingLogin | SessionToken | None", signin.attempt(
        login, email, password, code, secret_key=deps.secret_key(), user_agent=signin.user_agent(),
        client_address=signin.client_address()))
    if result is None:
        return
    if isinstance(result, PendingLogin):
        signin.set_pending(result)
        st.switch_page(signin.enroll_page())
    signin.sign_in(result)
    st.rerun()
