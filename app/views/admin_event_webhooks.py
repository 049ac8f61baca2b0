"""Admin: outgoing event webhooks — subscribe a URL (the signing secret is shown once), see each
endpoint's health (paused after a day of failures) and its latest deliveries, resume, delete."""

from __future__ import annotations

import streamlit as st

from app import deps, signin
from app.deps import call, secret_key
from app.views import minute
from switchboard.db.schema import EVENT_TYPES_OUT
from switchboard.errors import SwitchboardError
from switchboard.policy import Action
from switchboard.services.event_webhooks import (
    create_event_webhook,
    delete_event_webhook,
    list_event_deliveries,
    list_event_webhooks,
    resume_event_webhook,
)
from switchboard.types import Actor


def _create_form(actor: Actor) -> None:
    with st.form("create_event_webhook", clear_on_submit=True):
        url = st.text_input("Endpoint URL (https://…)")
        events = st.multiselect("Events", list(EVENT_TYPES_OUT), default=list(EVENT_TYPES_OUT))
        if not st.form_submit_button("Subscribe", type="primary"):
            return
    try:
        created = call(create_event_webhook, actor, url=url, events=events, secret_key=secret_key())
    except SwitchboardError as exc:
        st.error(str(exc))
        return
    st.success("Subscribed. Copy the signing secret now: it is shown only this once (docs/api.md shows how "
               "to verify the Switchboard-Signature header with it).")
    st.code(created.secret, language=None)


def page() -> None:
    actor = signin.page_actor(Action.MANAGE_WEBHOOKS)
    st.title("Event webhooks")
    st.caption("Switchboard POSTs signed events (message.received, message.status, conversation.assigned, "
               "conversation.completed) to your endpoints, retried for 24 hours; an endpoint failing for a "
               "day is paused until you resume it.")
    with st.expander("Subscribe an endpoint"):
        _create_form(actor)
    subs = call(list_event_webhooks, actor)
    if not subs:
        st.info("No event webhooks yet.")
        return
    for s in subs:
        if s.status == "paused":
            st.warning(f"{s.url} is paused since {minute(s.paused_at)} after a day of failed deliveries: "
                       f"{s.last_error or ''}")
    st.dataframe(
        [{"Id": s.id, "URL": s.url, "Events": ", ".join(s.events), "Status": s.status,
          "Failing since": minute(s.failing_since), "Last delivery": minute(s.last_delivery_at),
          "Waiting": s.pending, "Given up": s.failed, "Last error": s.last_error or ""} for s in subs],
        hide_index=True, width="stretch",
    )
    names = {f"#{s.id} {s.url}": s for s in subs}
    pick = names[st.selectbox("Endpoint", list(names), key="event_webhook_pick")]
    c1, c2 = st.columns(2)
    if pick.status == "paused" and c1.button("Resume", key="event_webhook_resume") and deps.act(
            f"{pick.url} resumed.", resume_event_webhook, actor, pick.id):
        st.rerun()
    if c2.button("Delete", key="event_webhook_delete") and deps.act(
            f"{pick.url} deleted.", delete_event_webhook, actor, pick.id):
        st.rerun()
    deliveries = call(list_event_deliveries, actor, pick.id)
    st.subheader("Latest deliveries")
    st.dataframe(
        [{"Event": d.event_id, "Type": d.event_type, "Status": d.status, "Attempts": d.attempts,
          "Last answer": d.last_status_code or "", "Error": d.last_error or "", "Created": minute(d.created_at),
          "Delivered": minute(d.delivered_at), "Next try": minute(d.next_attempt_at)} for d in deliveries],
        hide_index=True, width="stretch",
    )
