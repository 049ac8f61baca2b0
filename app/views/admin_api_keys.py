"""Admin: HTTP API keys — create one (the key is shown once), the list with scopes, last use and usage,
revoke."""

from __future__ import annotations

from collections import defaultdict

import streamlit as st

from app import deps, signin
from app.deps import call
from app.views import minute
from switchboard.db.schema import API_SCOPES
from switchboard.errors import SwitchboardError
from switchboard.policy import Action
from switchboard.services.api_keys import (
    DEFAULT_RATE_LIMIT,
    UsageDay,
    api_key_usage,
    create_api_key,
    list_api_keys,
    revoke_api_key,
)
from switchboard.services.channels import organization_channels

USAGE_DAYS = 30



def _totals(usage: list[UsageDay]) -> dict[int, tuple[int, int, int]]:
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for u in usage:
        s = sums[u.api_key_id]
        s[0] += u.requests
        s[1] += u.messages_sent
        s[2] += u.errors
    return {k: (v[0], v[1], v[2]) for k, v in sums.items()}


def _create_form(actor: object) -> None:
    channels = [c.key for c in call(organization_channels, actor)]
    with st.form("create_api_key", clear_on_submit=True):
        name = st.text_input("Name (what uses the key, e.g. 'shop orders')")
        scopes = st.multiselect("Scopes", list(API_SCOPES), default=["messages:send", "messages:read"])
        only = st.multiselect("Only these channels (empty: every channel)", channels)
        days = st.number_input("Expires after (days; 0 = never)", min_value=0, max_value=3650, value=0)
        rate = st.number_input("Rate limit (requests per minute)", min_value=1, max_value=1_000_000,
                               value=DEFAULT_RATE_LIMIT)
        if not st.form_submit_button("Create key", type="primary"):
            return
    try:
        created = call(create_api_key, actor, name=name, scopes=scopes, channel_keys=only or None,
                       expires_in_days=int(days) or None, rate_limit_per_minute=int(rate))
    except SwitchboardError as exc:
        st.error(str(exc))
        return
    st.success(f"Key {created.view.prefix} created. Copy it now: it is shown only this once.")
    st.code(created.key, language=None)


def page() -> None:
    actor = signin.page_actor(Action.MANAGE_API_KEYS)
    st.title("API keys")
    st.caption("Keys let your systems use the HTTP API (`/api/v1`, see docs/api.md): send as "
               "`Authorization: Bearer <key>`. Only a hash of each key is stored.")
    with st.expander("Create a key", expanded=False):
        _create_form(actor)
    keys = call(list_api_keys, actor)
    if not keys:
        st.info("No API keys yet.")
        return
    usage = call(api_key_usage, actor, days=USAGE_DAYS)
    totals = _totals(usage)
    st.subheader("Keys")
    st.dataframe(
        [
            {"Id": k.id, "Prefix": k.prefix, "Name": k.name, "Status": k.status(), "Scopes": ", ".join(k.scopes),
             "Channels": ", ".join(k.channel_keys) if k.channel_keys is not None else "all",
             "Last used": minute(k.last_used_at), "Expires": minute(k.expires_at),
             f"Requests ({USAGE_DAYS} d)": totals.get(k.id, (0, 0, 0))[0],
             "Messages sent": totals.get(k.id, (0, 0, 0))[1], "Errors": totals.get(k.id, (0, 0, 0))[2],
             "Created": minute(k.created_at), "By": k.created_by or "CLI"}
            for k in keys
        ],
        hide_index=True, width="stretch",
    )
    if usage:
        with st.expander(f"Usage per day (last {USAGE_DAYS} days, UTC)"):
            st.dataframe([{"Day": u.day.isoformat(), "Key": u.prefix, "Requests": u.requests,
                           "Messages sent": u.messages_sent, "Errors": u.errors} for u in usage],
                         hide_index=True, width="stretch")
    active = {f"{k.prefix} · {k.name}": k.id for k in keys if k.status() == "active"}
    if active:
        pick = st.selectbox("Revoke a key (it stops working at once)", list(active), key="revoke_api_key")
        if st.button("Revoke", key="revoke_api_key_button") and deps.act(
                f"Key {pick} revoked.", revoke_api_key, actor, active[pick]):
            st.toast(f"Key {pick} revoked.")
            st.rerun()  # the list above shows it revoked
