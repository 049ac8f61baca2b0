"""Admin: invite users, roles, disable/enable, unlock, reset TOTP, channel permissions."""

from __future__ import annotations

import streamlit as st

from app import deps, signin
from switchboard.auth.admin import (
    change_role,
    disable_user,
    enable_user,
    list_users,
    reset_totp,
    set_channel_permissions,
    unlock_user,
    user_channel_grants,
)
from switchboard.auth.invites import invite_user
from switchboard.db.schema import ROLES
from switchboard.errors import SwitchboardError
from switchboard.policy import Action


def render() -> None:
    actor = signin.page_actor(Action.MANAGE_USERS)
    st.title("Users & access")

    with st.expander("Invite a user", expanded=False), st.form("invite_user_form", clear_on_submit=True):
        email = st.text_input("Email", key="admin_invite_email")
        name = st.text_input("Name", key="admin_invite_name")
        role = st.selectbox("Role", ROLES, index=2, key="admin_invite_role")
        invited = st.form_submit_button("Create invite", type="primary", key="admin_invite_submit")
    if invited:
        try:
            result = deps.call(invite_user, actor, email=email, name=name, role=role,
                               secret_key=deps.secret_key())
        except SwitchboardError as exc:
            st.error(str(exc))
        else:
            if result.emailed:
                st.success(f"Invite e-mailed to {result.email} (valid until {result.expires_at:%Y-%m-%d %H:%M} UTC).")
            else:
                if result.mail_error:
                    st.warning(f"E-mail failed ({result.mail_error}); give the link to the user yourself.")
                st.info(f"One-time link for {result.email}, valid until {result.expires_at:%Y-%m-%d %H:%M} UTC:")
                st.code(result.link, language=None)

    users = deps.call(list_users, actor)
    st.dataframe(
        [{"id": u.id, "name": u.name, "email": u.email, "role": u.role, "status": u.status,
          "2FA": "on" if u.totp_enabled else "not set up",
          "locked until": u.locked_until.strftime("%Y-%m-%d %H:%M") if u.locked_until else ""} for u in users],
        hide_index=True, width="stretch",
    )
    if not users:
        return
    labels = {u.id: f"{u.name} <{u.email}> ({u.status})" for u in users}
    user_id = st.selectbox("Manage user", list(labels), format_func=labels.__getitem__, key="admin_user_pick")
    user = next(u for u in users if u.id == user_id)

    c1, c2, c3, c4 = st.columns(4)
    new_role = c1.selectbox("Role", ROLES, index=ROLES.index(user.role), key=f"admin_role_{user.id}")
    if c1.button("Save role", key="admin_role_save"):
        deps.act(f"Role of {user.email} is now {new_role}.", change_role, actor, user.id, new_role)
    if user.status == "disabled":
        if c2.button("Enable", key="admin_enable"):
            deps.act(f"{user.email} enabled.", enable_user, actor, user.id)
    elif c2.button("Disable", key="admin_disable", help="Signs the user out everywhere at once"):
        deps.act(f"{user.email} disabled and signed out.", disable_user, actor, user.id)
    if c3.button("Reset 2FA", key="admin_reset_totp", help="The user sets up a new authenticator at next login"):
        deps.act(f"2FA of {user.email} reset; they enroll again at next sign-in.", reset_totp, actor, user.id,
             secret_key=deps.secret_key())
    if c4.button("Unlock", key="admin_unlock", disabled=user.locked_until is None and not user.failed_attempts):
        deps.act(f"{user.email} unlocked.", unlock_user, actor, user.id)

    st.subheader("Channel permissions")
    access = deps.call(user_channel_grants, actor, user.id)
    if not access:
        st.caption("No channels yet.")
        return
    if user.role in ("admin", "manager"):
        st.caption(f"A {user.role} sees and sends on every channel.")
        return
    edited = st.data_editor(
        [{"channel_id": a.channel_id, "channel": f"{a.channel_name} ({a.provider})", "view": a.can_view,
          "send": a.can_send} for a in access],
        disabled=["channel_id", "channel"], hide_index=True, key=f"admin_perms_{user.id}",
    )
    if st.button("Save permissions", key="admin_perms_save"):
        wanted = {int(str(r["channel_id"])): (bool(r["view"]), bool(r["send"])) for r in edited}
        deps.act("Permissions saved.", set_channel_permissions, actor, user.id, wanted)
