"""Managers: response-time analytics from the DuckDB warehouse (read-only).

Every read goes through :func:`switchboard.services.analytics.analytics_reader`, which checks the
access policy (managers and admins) and binds the reads to the actor's organization. Metric names,
labels and definitions come from the metric catalogue (:mod:`warehouse.metrics`).

Per agent / channel / day: count, mean, median, p90, min and max of first response, response, queue,
handle and resolution times, wall clock or business hours (the channels' current calendars); the
weekday x hour heatmap; SLA shares and breaches; the live queue as of the last build. Every read is a
read of one warehouse snapshot (:func:`warehouse.queries.connect`), cached with a bounded
``st.cache_data`` keyed on the published snapshot's id, so a new build shows up at once and readers
never block it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import plotly.express as px
import polars as pl
import streamlit as st

from app import deps, signin
from switchboard.errors import PermissionDenied
from switchboard.services.analytics import AnalyticsReader, analytics_reader
from switchboard.settings import get_settings
from warehouse import queries
from warehouse.metrics import COUNT, STATS, TIME_METRICS, TIME_METRICS_BY_NAME

METRICS = {m.name: m.label for m in TIME_METRICS}
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@st.cache_data(ttl=300, max_entries=256, show_spinner=False)
def _cached(_reader: AnalyticsReader, organization_id: int, path: str, stamp: int, fn_name: str,
            args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> pl.DataFrame:
    """One cached warehouse read of one organization; ``stamp`` (the published snapshot's id)
    invalidates it when a build is published. ``_reader`` (not hashed) does the read; the key is the other arguments."""
    result: pl.DataFrame = _reader.read(fn_name, *args, **dict(kwargs))
    return result


def _read(reader: AnalyticsReader, fn_name: str, *args: Any, **kwargs: Any) -> Any:
    path = reader.warehouse_path
    return _cached(reader, reader.organization_id, str(path), queries.snapshot_id(path), fn_name, tuple(args),
                   tuple(sorted(kwargs.items())))


def duration(ms: float) -> str:
    """A duration short enough for a metric tile: 42 s, 68.8 min, 4.1 h, 3.2 d."""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 120 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _ago(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def built_caption(built_at: str | None, now: datetime) -> str:
    if not built_at:
        return "Warehouse build time unknown."
    at = datetime.fromisoformat(built_at)
    return (f"Warehouse built {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({_ago((now - at).total_seconds())}) — "
            "live figures are as of that build.")


def staleness(built_at: str | None, now: datetime, interval_seconds: int) -> str | None:
    """A warning when the last build is much older than the schedule says it should be."""
    if not built_at:
        return None
    age = (now - datetime.fromisoformat(built_at)).total_seconds()
    if age <= max(3 * interval_seconds, 15 * 60):
        return None
    return (f"The warehouse was last built {_ago(age)} although it should be rebuilt every "
            f"{interval_seconds // 60 or 1} min: is the worker running? (Channels & health lists the flow runs.)")


# chart legends and table headers in words a manager reads: "Median (min)", not "median_min"
_WORDS = {f"{s.name}_min": f"{s.label} (min)" for s in STATS} | {"count": COUNT.label}


def _minutes(df: pl.DataFrame) -> pl.DataFrame:
    """ms columns → minutes, rounded, for display."""
    return df.with_columns([
        (pl.col(c) / 60_000).round(1).alias(c.replace("_ms", "_min"))
        for c in df.columns if c.endswith("_ms")
    ]).drop([c for c in df.columns if c.endswith("_ms")])


def _stats_section(reader: AnalyticsReader, metric: str, start: date, end: date, business: bool,
                   channel_ids: tuple[int, ...]) -> None:
    m = TIME_METRICS_BY_NAME[metric]
    st.caption(m.definition + (" Business hours only (current calendars)." if business else " Wall clock."))
    overall = _read(reader, "time_metric_stats", metric, start, end, business_hours=business,
                    channel_ids=channel_ids)
    if overall.is_empty() or not overall["count"][0]:
        st.info("No data for this metric in the selected range.")
        return
    row = overall.row(0, named=True)
    cols = st.columns(1 + len(STATS))
    cols[0].metric(COUNT.label, f"{row[COUNT.name]:,}", help=COUNT.description)
    for col, stat in zip(cols[1:], STATS, strict=True):
        value = row[f"{stat.name}_{m.unit}"] or 0
        col.metric(stat.label, duration(value), help=f"{stat.description}: {value / 60_000:,.1f} minutes")
    tabs = st.tabs(["Per agent", "Per channel", "Per day"])
    for tab, group in zip(tabs, ("agent", "channel", "day"), strict=True):
        with tab:
            df = _read(reader, "time_metric_stats", metric, start, end, group_by=group,
                       business_hours=business, channel_ids=channel_ids)
            if df.is_empty():
                st.info("No data.")
                continue
            shown = _minutes(df).with_columns(pl.col(group).cast(pl.Utf8).fill_null("(none)")).rename(
                _WORDS, strict=False)
            median, p90, mean = (_WORDS[f"{name}_min"] for name in ("median", "p90", "mean"))
            if group == "day":
                fig = px.line(shown.to_pandas(), x=group, y=[median, p90, mean], markers=True,
                              labels={"value": "minutes", "variable": "", group: "Day"})
            else:
                fig = px.bar(shown.to_pandas(), x=group, y=[median, p90], barmode="group",
                             labels={"value": "minutes", "variable": "", group: group.capitalize()})
            st.plotly_chart(fig, width="stretch")
            st.dataframe(shown, hide_index=True, width="stretch")


def _heatmap(reader: AnalyticsReader, start: date, end: date, channel_ids: tuple[int, ...], business: bool) -> None:
    df = _read(reader, "hourly_volume", start, end, channel_ids=channel_ids)
    if df.is_empty():
        st.info("No traffic in the selected range.")
        return
    what = st.radio("Heatmap of", ["Messages received", "Average response time"], horizontal=True,
                    key="analytics_heatmap")
    col = "total_messages_received" if what == "Messages received" else (
        "avg_response_business_ms" if business else "avg_response_ms")
    grid = [[0.0] * 24 for _ in WEEKDAYS]
    for r in df.iter_rows(named=True):
        v = r[col] or 0
        grid[int(r["day_of_week"]) - 1][int(r["hour_of_day"])] = v / 60_000 if col.endswith("_ms") else v
    fig = px.imshow(grid, x=[f"{h:02d}" for h in range(24)], y=WEEKDAYS, aspect="auto",
                    labels={"x": "hour (local)", "y": "weekday",
                            "color": "minutes" if col.endswith("_ms") else "messages"},
                    color_continuous_scale="Blues")
    st.plotly_chart(fig, width="stretch")


def _sla(reader: AnalyticsReader, start: date, end: date, channel_ids: tuple[int, ...], business: bool) -> None:
    df = _read(reader, "sla_daily", start, end, channel_ids=channel_ids)
    if df.is_empty():
        st.info("No cycles started in the selected range.")
        return
    fr = "first_response_business_sla_share" if business else "first_response_sla_share"
    rs = "resolution_business_sla_share" if business else "resolution_sla_share"
    daily = df.group_by("metric_date").agg(
        (pl.col("count_first_response_met").sum() / pl.col("count_cycles").sum()).alias("first response met"),
        pl.col(fr).mean().alias("first response share (decided)"),
        pl.col(rs).mean().alias("resolution share (decided)"),
    ).sort("metric_date")
    st.plotly_chart(px.line(daily.to_pandas(), x="metric_date",
                            y=["first response share (decided)", "resolution share (decided)"], markers=True,
                            labels={"value": "share of cycles", "metric_date": "day"}), width="stretch")
    st.dataframe(df.drop("organization_id"), hide_index=True, width="stretch")
    kind = st.radio("Breaches of", ["first_response", "resolution"], horizontal=True, key="analytics_breach")
    st.dataframe(_minutes(_read(reader, "sla_breaches", start, end, kind=kind, business_hours=business)),
                 hide_index=True, width="stretch")


def _live(reader: AnalyticsReader, channel_ids: tuple[int, ...]) -> None:
    q = _read(reader, "live_queue", channel_ids=channel_ids)
    c1, c2, c3 = st.columns(3)
    c1.metric("Open", q.height)
    c2.metric("Unassigned", int(q["is_unassigned"].sum()) if q.height else 0)
    c3.metric("Unattended (waiting for a reply)", int(q["is_unattended"].sum()) if q.height else 0)
    st.caption("Per agent load with presence")
    st.dataframe(_minutes(_read(reader, "agent_load")), hide_index=True, width="stretch")
    if q.height:
        st.dataframe(_minutes(q.select("conversation_id", "channel_name", "conversation_status", "assignee_email",
                                       "assignee_presence_state", "is_unattended", "waiting_since", "waiting_ms",
                                       "count_unread")), hide_index=True, width="stretch")


def _date_range(picked: Any, today: date) -> tuple[date, date]:
    """``st.date_input`` gives one date, a 1-tuple while picking, or a 2-tuple."""
    if isinstance(picked, date):
        return picked, picked
    values = [d for d in picked if isinstance(d, date)]
    if not values:
        return today, today
    return values[0], values[-1]


def page() -> None:
    actor = signin.page_actor()
    st.title("Response times")
    path = get_settings().warehouse_file
    try:
        reader = deps.call(analytics_reader, actor, path)
    except PermissionDenied as exc:
        st.error(str(exc))
        return
    try:
        state = reader.build_state()
    except queries.WarehouseNotBuilt:
        st.info("The warehouse has not been built yet: run `switchboard warehouse build` "
                "(the worker also builds it on a schedule).")
        return
    st.caption(built_caption(state.get("built_at"), datetime.now(UTC)))
    stale = staleness(state.get("built_at"), datetime.now(UTC), get_settings().warehouse_build_interval_seconds)
    if stale:
        st.warning(stale)
    channels = _read(reader, "channels")
    names = dict(zip(channels["channel_name"].to_list(), channels["channel_id"].to_list(), strict=True))

    c1, c2, c3, c4 = st.columns([2, 2, 2.6, 1.4])
    today = date.today()
    picked = c1.date_input("Days (organization's timezone)", (today - timedelta(days=6), today),
                           key="analytics_days")
    start, end = _date_range(picked, today)
    metric = c2.selectbox("Metric", list(METRICS), format_func=METRICS.__getitem__, key="analytics_metric")
    chosen = c3.multiselect("Channels", list(names), key="analytics_channels")
    business = c4.toggle("Business hours", key="analytics_business")
    channel_ids = tuple(int(names[n]) for n in chosen)

    stats, heat, sla, live = st.tabs(["Times", "Weekday x hour", "SLA", "Live queue"])
    with stats:
        _stats_section(reader, str(metric), start, end, business, channel_ids)
    with heat:
        _heatmap(reader, start, end, channel_ids, business)
    with sla:
        _sla(reader, start, end, channel_ids, business)
    with live:
        _live(reader, channel_ids)
