"""My account: change password, new recovery codes, sign out (here or everywhere)."""

from __future__ import annotations

import streamlit as st

from app import deps, signin
from switchboard.auth.account import change_password, recovery_codes_left, regenerate_recovery_codes
from switchboard.auth.admin import revoke_user_sessions
from switchboard.auth.passwords import MIN_LENGTH
from switchboard.errors import SwitchboardError


def render() -> None:
    actor = signin.page_actor()
    st.title("My account")
    st.write(f"**{signin.current_user_name()}** · {actor.email} · role **{actor.role}**")

    st.subheader("Sign out")
    c1, c2 = st.columns(2)
    if c1.button("Sign out", key="account_logout", type="primary"):
        signin.logout()
        st.rerun()
    if c2.button("Sign out on every device", key="account_logout_all"):
        deps.call(revoke_user_sessions, actor, actor.user_id)
        signin.logout()
        st.rerun()

    st.subheader("Change password")
    with st.form("account_password_form", clear_on_submit=True):
        current = st.text_input("Current password", type="password", key="account_pw_current")
        new = st.text_input(f"New password (at least {MIN_LENGTH} characters)", type="password",
                            key="account_pw_new")
        repeat = st.text_input("Repeat the new password", type="password", key="account_pw_repeat")
        changed = st.form_submit_button("Change password", key="account_pw_submit")
    if changed:
        if new != repeat:
            st.error("The two new passwords differ.")
        else:
            try:
                ended = deps.call(change_password, actor, current, new, keep_token=signin.current_token())
            except SwitchboardError as exc:
                st.error(str(exc))
            else:
                st.success(f"Password changed. Signed out {ended} other session(s).")

    st.subheader("Recovery codes")
    st.caption(f"{deps.call(recovery_codes_left, actor)} unused recovery code(s) left.")
    with st.form("account_codes_form", clear_on_submit=True):
        password = st.text_input("Password", type="password", key="account_codes_pw")
        regen = st.form_submit_button("Create new recovery codes", key="account_codes_submit")
    if regen:
        try:
            codes = deps.call(regenerate_recovery_codes, actor, password)
        except SwitchboardError as exc:
            st.error(str(exc))
        else:
            st.success("New codes created; the old ones no longer work. They are shown only now:")
            st.code("\n".join(codes), language=None)
