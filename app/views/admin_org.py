"""Admin: organization settings — timezone, business hours, SLA targets, auto-assignment, retention."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

import streamlit as st

from app import deps, signin
from app.deps import call
from switchboard.errors import SwitchboardError
from switchboard.services.organizations import (
    DAYS,
    MAX_RETENTION_DAYS,
    RETENTION,
    OrganizationView,
    get_organization,
    update_settings,
)
from switchboard.workflows import warehouse as warehouse_jobs

DAY_NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
             "sat": "Saturday", "sun": "Sunday"}


@st.cache_data(max_entries=1)
def _timezones() -> list[str]:
    return sorted(available_timezones())


RETENTION_LABELS = {
    "retention_webhook_days": "Processed webhook deliveries (days)",
    "retention_webhook_failed_days": "Rejected and failed deliveries, for audit (days)",
    "retention_runs_days": "Pipeline run history (days)",
    "retention_signals_days": "Sent and failed read marks / typing indicators (days)",
}


def _retention_inputs(org: OrganizationView) -> dict[str, int]:
    """The retention days the daily cleanup flow applies (docs/operations.md, "Retention")."""
    st.markdown("**Retention** (the daily cleanup deletes older rows; messages are kept)")
    cols = st.columns(len(RETENTION))
    return {name: int(col.number_input(RETENTION_LABELS[name], min_value=1, max_value=MAX_RETENTION_DAYS,
                                       value=int(getattr(org, name)), key=name))
            for col, name in zip(cols, RETENTION, strict=True)}


def page() -> None:
    actor = signin.page_actor()
    st.title("Organization settings")
    org = call(get_organization, actor)
    with st.form("org_settings"):
        zones = _timezones()
        tz = st.selectbox("Timezone (days and business hours are computed in it)", zones,
                          index=zones.index(org.timezone) if org.timezone in zones else 0)
        st.markdown("**Business hours** (empty = closed that day)")
        hours: dict[str, Any] = {}
        for day in DAYS:
            spans = org.business_hours.get(day) or []
            c1, c2, c3 = st.columns([1, 1, 1])
            c1.text(DAY_NAMES[day])
            start = c2.text_input("Opens", spans[0][0] if spans else "", key=f"bh_{day}_start", placeholder="09:00")
            end = c3.text_input("Closes", spans[0][1] if spans else "", key=f"bh_{day}_end", placeholder="17:00")
            if start.strip() or end.strip():
                hours[day] = [[start.strip(), end.strip()]]
        holidays = st.text_input("Holidays (YYYY-MM-DD, comma separated)",
                                 ", ".join(org.business_hours.get("holidays", [])))
        if holidays.strip():
            hours["holidays"] = [h.strip() for h in holidays.split(",") if h.strip()]
        c1, c2 = st.columns(2)
        frt = c1.number_input("First response target (minutes)", min_value=1,
                              value=max(1, org.sla_first_response_ms // 60000))
        res = c2.number_input("Resolution target (hours)", min_value=1,
                              value=max(1, org.sla_resolution_ms // 3_600_000))
        auto = st.toggle("Auto-assign new and reopened conversations to online agents (round-robin)",
                         value=org.auto_assign)
        retention = _retention_inputs(org)
        if st.form_submit_button("Save", type="primary"):
            try:
                call(update_settings, actor, timezone=tz, business_hours=hours,
                     sla_first_response_ms=int(frt) * 60_000, sla_resolution_ms=int(res) * 3_600_000,
                     auto_assign=auto, **retention)
            except SwitchboardError as exc:
                st.error(str(exc))
            else:
                rebuilding = warehouse_jobs.rebuild_in_background(
                    deps.engine(), deps.settings(), reason="organization settings saved")
                st.success("Saved. The warehouse is being rebuilt with these settings: the analytics follow "
                           "within a minute." if rebuilding else "Saved.")
