"""Sign in with a one-time recovery code when the authenticator app is lost."""

from __future__ import annotations

import streamlit as st

from app import signin
from switchboard.auth.login import login_with_recovery_code


def render() -> None:
    st.title("Sign in with a recovery code")
    st.write("Use one of the ten codes you saved when you set up two-factor authentication. "
             "Each code works once. Afterwards, ask an admin to reset your authenticator, or create new "
             "codes under *My account*.")
    with st.form("recovery_form"):
        email = st.text_input("Email", key="recovery_email", autocomplete="username")
        password = st.text_input("Password", type="password", key="recovery_password",
                                 autocomplete="current-password")
        code = st.text_input("Recovery code (XXXXX-XXXXX)", key="recovery_code")
        submitted = st.form_submit_button("Sign in", type="primary", key="recovery_submit")
    st.page_link(signin.login_page(default=False), label="Back to the normal sign-in")
    if not submitted:
        return
    if not signin.credentials_given(email, password):
        return
    token = signin.attempt(login_with_recovery_code, email, password, code, user_agent=signin.user_agent(),
                           client_address=signin.client_address())
    if token is None:  # refused: the same for every address (switchboard/auth/login.py)
        return
    signin.sign_in(token)
    st.rerun()
