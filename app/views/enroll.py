"""Invite acceptance (choose a password) and TOTP enrollment (QR + manual key, confirm, recovery codes)."""

from __future__ import annotations

import streamlit as st

from app import deps, signin
from switchboard.auth.enrollment import begin_enrollment, confirm_enrollment
from switchboard.auth.invites import accept_invite, describe_invite
from switchboard.auth.login_sessions import SessionToken
from switchboard.auth.passwords import MIN_LENGTH
from switchboard.errors import AuthError, SwitchboardError


def _show_recovery_codes(codes: list[str]) -> None:
    st.title("Save your recovery codes")
    st.success("Two-factor authentication is on.")
    st.write("Each code signs you in once if you lose your authenticator. They are shown only now: "
             "store them somewhere safe (a password manager, or printed).")
    st.code("\n".join(codes), language=None)
    st.download_button("Download codes", "\n".join(codes) + "\n", file_name="switchboard-recovery-codes.txt",
                       key="enroll_download_codes")
    saved = st.checkbox("I have saved my recovery codes", key="enroll_codes_saved")
    if st.button("Continue to Switchboard", type="primary", disabled=not saved, key="enroll_continue"):
        token = st.session_state.get(signin.AFTER_ENROLL)
        if isinstance(token, SessionToken):
            signin.sign_in(token)
        st.session_state.pop(signin.RECOVERY_CODES, None)
        st.rerun()


def render() -> None:
    codes = st.session_state.get(signin.RECOVERY_CODES)
    if codes:
        _show_recovery_codes(list(codes))
        return
    st.title("Set up two-factor authentication")
    pending = signin.pending_login()
    if pending is None:
        st.info("Sign in with your email and password first.")
        st.page_link(signin.login_page(default=False), label="Go to sign in")
        return
    try:
        enrollment = deps.call(begin_enrollment, pending, secret_key=deps.secret_key())
    except SwitchboardError as exc:
        st.error(str(exc))
        if isinstance(exc, AuthError):
            signin.set_pending(None)
        st.page_link(signin.login_page(default=False), label="Back to sign in")
        return
    st.write(f"Signed in as **{pending.email}**. Scan this QR code with an authenticator app "
             "(Google Authenticator, Aegis, 1Password, …), or type the key by hand.")
    left, right = st.columns([1, 2])
    with left:
        st.image(enrollment.qr_png, caption="Scan with your authenticator app", width=220)
    with right:
        st.caption("Manual key (time-based, 6 digits, 30 s)")
        st.code(enrollment.manual_key, language=None)
    with st.form("enroll_form"):
        code = st.text_input("Enter the 6-digit code your app shows now", key="enroll_code", max_chars=7,
                             autocomplete="one-time-code")
        submitted = st.form_submit_button("Confirm and turn on", type="primary", key="enroll_submit")
    if submitted:
        result = signin.attempt(confirm_enrollment, pending, code, secret_key=deps.secret_key(),
                                user_agent=signin.user_agent())
        if result is None:
            return
        signin.set_pending(None)
        st.session_state[signin.RECOVERY_CODES] = result.recovery_codes
        st.session_state[signin.AFTER_ENROLL] = result.session
        st.rerun()


def render_invite() -> None:
    st.title("Welcome to Switchboard")
    token = st.query_params.get("token", "")
    if not token:
        st.error("This page needs the invite link you received (…/invite?token=…).")
        return
    try:
        info = deps.call(describe_invite, token)
    except SwitchboardError as exc:
        st.error(str(exc))
        st.page_link(signin.login_page(default=False), label="Go to sign in")
        return
    st.write(f"Choose a password for **{info.email}**. Next you will set up your authenticator app.")
    with st.form("invite_form"):
        password = st.text_input(f"Password (at least {MIN_LENGTH} characters)", type="password",
                                 key="invite_password", autocomplete="new-password")
        repeat = st.text_input("Repeat the password", type="password", key="invite_repeat",
                               autocomplete="new-password")
        submitted = st.form_submit_button("Set password", type="primary", key="invite_submit")
    if not submitted:
        return
    if password != repeat:
        st.error("The two passwords differ.")
        return
    try:
        pending = deps.call(accept_invite, token, password)
    except SwitchboardError as exc:
        st.error(str(exc))
        return
    signin.set_pending(pending)
    st.query_params.clear()
    st.switch_page(signin.enroll_page())
