"""Managers and admins: analytics from the DuckDB warehouse (read-only), to act on.

Every read goes through :func:`switchboard.services.analytics.analytics_reader`, which checks the
access policy (managers and admins) and binds the reads to the actor's organization. Metric names,
labels and definitions come from the metric catalogue (:mod:`warehouse.metrics`); what each figure
means is in docs/metrics.md.

Filters (days in the organization's timezone, channels, one agent, business hours) apply to the whole
page. Key figures compare with the previous period of the same length. Tabs (only the open one runs
its reads; it is in the URL, ``?tab=SLA``): per agent, per channel,
daily trends, the distribution of a time metric, the weekday x hour heatmap, SLA, the live queue, and
every conversation cycle. **Drill-down**: selecting an agent or channel row, a day, a heatmap cell or
the SLA breaches lists the conversation cycles behind it (customer, channel, times) with a link that
opens the thread in the inbox. Every table can be downloaded as CSV; the cycles as one row per cycle.

Every read is a read of one warehouse snapshot (:func:`warehouse.queries.connect`), cached with a
bounded ``st.cache_data`` keyed on the published snapshot's id, so a new build shows up at once and
readers never block it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import plotly.express as px
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from app import deps, signin
from app.text import visible
from switchboard.errors import PermissionDenied, SwitchboardError
from switchboard.services.analytics import AnalyticsReader, analytics_reader
from switchboard.services.inbox_views import customer_names
from switchboard.settings import get_settings
from switchboard.types import Actor
from warehouse import queries
from warehouse.metrics import COUNT, STATS, TIME_METRICS, TIME_METRICS_BY_NAME

METRICS = {m.name: m.label for m in TIME_METRICS}
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
ALL_AGENTS = "All agents"
TAB = "tab"  # session_state and URL query parameter: the open tab
DRILL = "analytics_drill"  # session_state: the filters of the cycles listed under the tabs, and their title
ROWS_SHOWN = 1000  # rows of a cycle list or of the live queue on the page (the CSV has all of them)


@st.cache_data(ttl=300, max_entries=256, show_spinner=False)
def _cached(_reader: AnalyticsReader, organization_id: int, path: str, stamp: int, fn_name: str,
            args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    """One cached warehouse read of one organization; ``stamp`` (the published snapshot's id)
    invalidates it when a build is published. ``_reader`` (not hashed) does the read; the key is the other arguments."""
    return _reader.read(fn_name, *args, **dict(kwargs))


def _read(reader: AnalyticsReader, fn_name: str, *args: Any, **kwargs: Any) -> Any:
    path = reader.warehouse_path
    return _cached(reader, reader.organization_id, str(path), queries.snapshot_id(path), fn_name, tuple(args),
                   tuple(sorted(kwargs.items())))


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    channel_ids: tuple[int, ...]
    agent: str | None  # an agent's email
    business: bool

    def previous(self) -> Filters:
        """The period of the same length just before this one."""
        days = (self.end - self.start).days + 1
        return replace(self, start=self.start - timedelta(days=days), end=self.start - timedelta(days=1))

    def reads(self) -> dict[str, Any]:
        return {"channel_ids": self.channel_ids or None, "agent": self.agent}


# --- formatting ----------------------------------------------------------------------------------

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


def _readable(df: pl.DataFrame) -> pl.DataFrame:
    """Durations in minutes and every header in words: "Median (min)", "Conversations completed"."""
    shown = _minutes(df).rename(_WORDS, strict=False)
    names = {}
    for c in shown.columns:
        if c in _WORDS.values():
            continue
        words = c.replace("_min", " (min)").replace("_", " ").replace(" email", "")
        names[c] = words[:1].upper() + words[1:]
    return shown.rename(names)


def delta(now: float | None, before: float | None, kind: str) -> str | None:
    """The change against the previous period, as a tile shows it: "+3", "-2.1 min", "+5 pp"."""
    if now is None or before is None:
        return None
    diff = now - before
    if kind == "share":
        return f"{diff * 100:+.0f} pp"
    if kind == "duration":
        return ("+" if diff >= 0 else "-") + duration(abs(diff))
    return f"{diff:+,.0f}"


def _csv(df: pl.DataFrame, name: str, key: str) -> None:
    _csv_on_click(lambda: df, name, key, df.height)


def _table(df: pl.DataFrame, name: str, key: str, *, select: bool = False) -> int | None:
    """A table in words with its CSV download; with ``select``, the index of the row the user selected."""
    shown = _readable(df)
    if select:
        event = st.dataframe(shown, hide_index=True, width="stretch", on_select="rerun",
                             selection_mode="single-row", key=f"table_{key}")
        rows = event.selection.rows if event is not None else []
    else:
        st.dataframe(shown, hide_index=True, width="stretch", key=f"table_{key}")
        rows = []
    _csv(shown, name, key)
    return int(rows[0]) if rows else None


def _drill(title: str, **criteria: Any) -> None:
    st.session_state[DRILL] = {"title": title, **criteria}


# --- sections ----------------------------------------------------------------------------------------

def _headline(reader: AnalyticsReader, f: Filters) -> None:
    now = _read(reader, "headline", f.start, f.end, business_hours=f.business, **f.reads())
    prev_f = f.previous()
    before = _read(reader, "headline", prev_f.start, prev_f.end, business_hours=f.business, **f.reads())
    tiles: list[tuple[str, str, str, str, Literal["normal", "inverse"]]] = [
        ("Conversations started", "count_started", "count", "Cycles started (created or reopened)", "normal"),
        ("Completed", "count_completed", "count", "Cycles completed in the period", "normal"),
        ("Median first response", "median_first_response_ms", "duration",
         TIME_METRICS_BY_NAME["first_response"].definition, "inverse"),
        ("First response, 90th percentile", "p90_first_response_ms", "duration",
         "90 % of first responses were at most this fast", "inverse"),
        ("Median response (every turn)", "median_response_ms", "duration",
         TIME_METRICS_BY_NAME["response"].definition, "inverse"),
        ("First-response SLA met", "first_response_sla_share", "share",
         "Share of decided cycles (met, breached or unanswered) answered within the target", "normal"),
        ("Unanswered turns", "count_unanswered_turns", "count",
         "Customer turns left without a human reply when their cycle completed", "inverse"),
    ]
    st.caption(f"Compared with {prev_f.start:%d %b} – {prev_f.end:%d %b %Y} (the previous period of the same length)"
               + (" · business hours only" if f.business else ""))
    cols = st.columns(len(tiles))
    for col, (label, field, kind, help_, colour) in zip(cols, tiles, strict=True):
        value = now.get(field)
        if value is None:
            shown = "–"
        elif kind == "duration":
            shown = duration(value)
        elif kind == "share":
            shown = f"{value * 100:.0f} %"
        else:
            shown = f"{value:,}"
        col.metric(label, shown, delta=delta(value, before.get(field), kind), delta_color=colour, help=help_)


def _agents(reader: AnalyticsReader, f: Filters) -> None:
    daily = _read(reader, "agent_daily", f.start, f.end)
    if f.agent:
        daily = daily.filter(pl.col("agent_email") == f.agent)
    if daily.is_empty():
        st.info("No agent activity in the selected range.")
        return
    table = daily.group_by("agent_email").agg(
        pl.col("conversations_accepted").sum(), pl.col("conversations_reassigned_to").sum(),
        pl.col("conversations_completed").sum(), pl.col("total_messages_sent").sum(),
        pl.col("total_messages_received").sum(), pl.col("concurrent_peak").max().alias("concurrency_peak"),
        pl.col("total_online_minutes").sum().alias("online_minutes"))
    metrics = ("first_response", "response", "handle")  # over the period's rows, never averaged medians
    many = _read(reader, "time_metric_stats_many", metrics, f.start, f.end, group_by="agent",
                 business_hours=f.business, **f.reads())
    for metric in metrics:
        stats = many[metric]
        table = table.join(stats.select(pl.col("agent").alias("agent_email"),
                                        pl.col("median_ms").alias(f"{metric}_median_ms"),
                                        pl.col("p90_ms").alias(f"{metric}_p90_ms")), on="agent_email", how="left")
    table = table.sort("conversations_completed", descending=True)
    st.caption("Counts over all channels from the daily agent sheet; times (median, 90th percentile) are credited "
               "to whoever replied, handled or completed, for the chosen channels. Select a row to list its "
               "conversations.")
    picked = _table(table, "agents", "agents", select=True)
    if picked is not None:
        email = table["agent_email"][picked]
        _drill(f"Conversations of {email}", agent=email)


def _channels(reader: AnalyticsReader, f: Filters) -> None:
    daily = _read(reader, "channel_daily", f.start, f.end, channel_ids=f.channel_ids or None)
    if daily.is_empty():
        st.info("No traffic in the selected range.")
        return
    table = daily.group_by("channel_id", "channel_name", "provider").agg(
        pl.col("conversations_started").sum(), pl.col("conversations_reopened").sum(),
        pl.col("conversations_completed").sum(), pl.col("total_messages_received").sum(),
        pl.col("total_messages_sent").sum(), pl.col("total_bot_messages").sum(),
        pl.col("count_unanswered_turns").sum())
    stats = _read(reader, "time_metric_stats", "first_response", f.start, f.end, group_by="channel",
                  business_hours=f.business, **f.reads())
    table = table.join(stats.select(pl.col("channel").alias("channel_name"),
                                    pl.col("median_ms").alias("first_response_median_ms"),
                                    pl.col("p90_ms").alias("first_response_p90_ms")),
                       on="channel_name", how="left").sort("conversations_started", descending=True)
    st.caption("Select a row to list its conversations.")
    picked = _table(table.drop("channel_id"), "channels", "channels", select=True)
    if picked is not None:
        _drill(f"Conversations on {table['channel_name'][picked]}", channel_ids=(int(table["channel_id"][picked]),))


def _trends(reader: AnalyticsReader, f: Filters, metric: str) -> None:
    daily = _read(reader, "channel_daily", f.start, f.end, channel_ids=f.channel_ids or None)
    if daily.is_empty():
        st.info("No traffic in the selected range.")
        return
    volume = daily.group_by("metric_date").agg(
        pl.col("conversations_started").sum().alias("Conversations started"),
        pl.col("conversations_completed").sum().alias("Completed"),
        pl.col("total_messages_received").sum().alias("Customer messages")).sort("metric_date")
    st.plotly_chart(px.line(volume.to_pandas(), x="metric_date",
                            y=["Conversations started", "Completed", "Customer messages"], markers=True,
                            labels={"metric_date": "Day", "value": "Count", "variable": ""}), width="stretch")
    times = _read(reader, "time_metric_stats", metric, f.start, f.end, group_by="day", business_hours=f.business,
                  **f.reads())
    if not times.is_empty():
        shown = _minutes(times).rename(_WORDS, strict=False)
        st.plotly_chart(px.line(shown.to_pandas(), x="day", y=[_WORDS["median_min"], _WORDS["p90_min"]], markers=True,
                                labels={"day": "Day", "value": f"{METRICS[metric]} (minutes)", "variable": ""}),
                        width="stretch")
    table = volume.join(times.select(pl.col("day").alias("metric_date"), pl.col("median_ms"), pl.col("p90_ms")),
                        on="metric_date", how="left")
    days = table["metric_date"].to_list()
    c1, c2 = st.columns([3, 1])
    day = c1.selectbox("Conversations started on", days, index=None, format_func=lambda d: f"{d:%a %d %b %Y}",
                       key="analytics_trend_day", placeholder="Pick a day to list its conversations")
    if day is not None and c2.button("List them", key="analytics_trend_drill"):
        _drill(f"Conversations started on {day:%a %d %b %Y}", day=day)
    _table(table, "daily", "daily")


def _edge(ms: float) -> str:
    """A histogram bin's edge: milliseconds below a second, else as the tiles show durations."""
    return f"{ms:.0f} ms" if ms < 1000 else duration(ms)


def _distribution(reader: AnalyticsReader, f: Filters, metric: str) -> None:
    """Histogram and per-agent box plot, aggregated in the warehouse (the values never leave it)."""
    m = TIME_METRICS_BY_NAME[metric]
    log = st.toggle("Logarithmic scale (long tails)", value=True, key="analytics_log")
    dist = _read(reader, "time_metric_distribution", metric, f.start, f.end, business_hours=f.business,
                 log_scale=log, **f.reads())
    summary = dist["summary"].row(0, named=True)
    if not summary["count"]:
        st.info(f"No {m.label.lower()} values in the selected range.")
        return
    median, p90 = float(summary["median_ms"]), float(summary["p90_ms"])
    bins = dist["bins"]
    last = len(bins) - 1

    def holds(i: int, lo: float, hi: float) -> str:
        """Which of the median and the 90th percentile bin ``i`` holds (the last linear bin holds its upper end)."""
        for name, v in (("the median", median), ("the 90th percentile", p90)):
            if lo <= v < hi or (not log and i == last and v == hi):
                return name
        return ""

    shown = pl.DataFrame({
        "range": [f"{_edge(lo)} – {_edge(hi)}" for lo, hi in zip(bins["lower_ms"], bins["upper_ms"], strict=True)],
        "Occurrences": bins["count"],
        "holds": [holds(i, lo, hi) for i, (lo, hi) in enumerate(zip(bins["lower_ms"], bins["upper_ms"], strict=True))],
    })
    fig = px.bar(shown.to_pandas(), x="range", y="Occurrences", color="holds",
                 color_discrete_map={"": "#8fa8c8", "the median": "#1f4e99", "the 90th percentile": "#d9822b"},
                 labels={"range": f"{m.label} ({'ratio' if log else 'equal'} bins)", "holds": "Bin holding"})
    fig.update_layout(bargap=0.05, xaxis={"categoryorder": "array", "categoryarray": shown["range"].to_list()})
    caption = (f"{summary['count']:,} values · median {duration(median)} · 90th percentile {duration(p90)}")
    if log and summary["count_zero"]:
        caption += f" · {summary['count_zero']:,} of 0 s not drawn on the logarithmic scale"
    st.caption(caption)
    st.plotly_chart(fig, width="stretch")
    agents = dist["agents"]
    floor = 0.001  # minutes: a log axis cannot draw 0

    def minutes(col: str) -> list[float]:
        return [max(v / 60_000, floor) if log else v / 60_000 for v in agents[col].fill_null(0).to_list()]

    box = go.Figure(go.Box(
        y=agents["agent"].fill_null("(no agent)").to_list(), q1=minutes("q1_ms"), median=minutes("median_ms"),
        q3=minutes("q3_ms"), lowerfence=minutes("p5_ms"), upperfence=minutes("p95_ms"),
        orientation="h", name="", boxpoints=False))
    box.update_xaxes(type="log" if log else "linear", title_text=f"{m.label} (minutes)")
    box.update_yaxes(title_text="Agent")
    st.caption("Per agent: the box spans the middle half of the values (25th to 75th percentile, the line is "
               "the median), the whiskers the 5th to the 95th percentile.")
    st.plotly_chart(box, width="stretch")


def _heatmap(reader: AnalyticsReader, f: Filters) -> None:
    df = _read(reader, "hourly_volume", f.start, f.end, channel_ids=f.channel_ids or None)
    if df.is_empty():
        st.info("No traffic in the selected range.")
        return
    what = st.radio("Heatmap of", ["Messages received", "Average response time"], horizontal=True,
                    key="analytics_heatmap")
    col = "total_messages_received" if what == "Messages received" else (
        "avg_response_business_ms" if f.business else "avg_response_ms")
    grid = [[0.0] * 24 for _ in WEEKDAYS]
    for r in df.iter_rows(named=True):
        v = r[col] or 0
        grid[int(r["day_of_week"]) - 1][int(r["hour_of_day"])] = v / 60_000 if col.endswith("_ms") else v
    fig = px.imshow(grid, x=[f"{h:02d}" for h in range(24)], y=WEEKDAYS, aspect="auto",
                    labels={"x": "Hour (local)", "y": "Weekday",
                            "color": "Average response (min)" if col.endswith("_ms") else "Messages"},
                    color_continuous_scale="Blues")
    st.plotly_chart(fig, width="stretch")
    c1, c2, c3 = st.columns([2, 2, 1])
    weekday = c1.selectbox("Weekday", list(range(1, 8)), format_func=lambda d: WEEKDAYS[d - 1],
                           key="analytics_cell_day")
    hour = c2.selectbox("Hour", list(range(24)), format_func=lambda h: f"{h:02d}:00–{h:02d}:59", index=9,
                        key="analytics_cell_hour")
    if c3.button("List this cell's conversations", key="analytics_cell_drill"):
        _drill(f"Conversations with a customer turn on {WEEKDAYS[weekday - 1]} {hour:02d}:00–{hour:02d}:59",
               weekday=weekday, hour=hour)


def _sla(reader: AnalyticsReader, f: Filters) -> None:
    df = _read(reader, "sla_daily", f.start, f.end, channel_ids=f.channel_ids or None)
    if df.is_empty():
        st.info("No cycles started in the selected range.")
        return
    fr = "first_response_business_sla_share" if f.business else "first_response_sla_share"
    rs = "resolution_business_sla_share" if f.business else "resolution_sla_share"
    daily = df.group_by("metric_date").agg(
        pl.col(fr).mean().alias("First response within target"),
        pl.col(rs).mean().alias("Resolution within target"),
    ).sort("metric_date")
    fig = px.line(daily.to_pandas(), x="metric_date", y=["First response within target", "Resolution within target"],
                  markers=True, labels={"value": "Share of decided cycles", "metric_date": "Day", "variable": ""})
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    st.plotly_chart(fig, width="stretch")
    _table(df.drop("organization_id", "channel_id", strict=False), "sla_daily", "sla")
    kind = st.radio("Breaches of", ["first_response", "resolution"], horizontal=True, key="analytics_breach",
                    format_func={"first_response": "First response", "resolution": "Resolution"}.__getitem__)
    if st.button("List the breached and unanswered cycles", key="analytics_sla_drill"):
        _drill(f"{'First-response' if kind == 'first_response' else 'Resolution'} target missed", sla_missed=kind)


def _live(reader: AnalyticsReader, f: Filters) -> None:
    channel_ids = f.channel_ids or None
    counts = _read(reader, "live_queue_counts", channel_ids=channel_ids)
    c1, c2, c3 = st.columns(3)
    c1.metric("Open", f"{counts['open']:,}")
    c2.metric("Unassigned", f"{counts['unassigned']:,}")
    c3.metric("Unattended (waiting for a reply)", f"{counts['unattended']:,}")
    st.caption("Per agent load with presence (as of the last build)")
    _table(_read(reader, "agent_load"), "agent_load", "load")
    if not counts["open"]:
        return
    columns = ("conversation_id", "channel_name", "conversation_status", "assignee_email", "assignee_presence_state",
               "is_unattended", "waiting_since", "waiting_ms", "count_unread")
    q = _read(reader, "live_queue", channel_ids=channel_ids, limit=ROWS_SHOWN)
    if counts["open"] > q.height:
        st.caption(f"The first {q.height:,} of {counts['open']:,} open conversations (unattended first, then the "
                   "longest waiting); the CSV has every one.")
    st.dataframe(_readable(q.select(columns)), hide_index=True, width="stretch", key="table_live")
    _csv_on_click(lambda: _readable(reader.read("live_queue", channel_ids=channel_ids).select(columns)),
                  "live_queue", "live", counts["open"])


def _csv_on_click(rows: Callable[[], pl.DataFrame], name: str, key: str, count: int) -> None:
    """A CSV download of ``count`` rows made when it is clicked (``rows`` runs then, in a thread of its own);
    nothing for an empty table."""
    if not count:
        return
    st.download_button(f"Download CSV ({count:,} rows)", lambda: rows().write_csv().encode(),
                       file_name=f"{name}.csv", mime="text/csv", key=f"csv_{key}", icon=":material/download:")


def _cycles(reader: AnalyticsReader, actor: Actor, f: Filters, title: str, criteria: dict[str, Any],
            key: str) -> None:
    """The conversation cycles behind a figure, with the customer, a link into the inbox and a CSV."""
    reads = f.reads() | {k: v for k, v in criteria.items() if k in ("channel_ids", "agent")}
    extra = {k: v for k, v in criteria.items() if k not in ("channel_ids", "agent")}
    head = _read(reader, "cycle_rows", f.start, f.end, business_hours=f.business, limit=ROWS_SHOWN + 1,
                 **reads, **extra)
    st.subheader(title)
    if head.is_empty():
        st.info("No conversation cycles match.")
        return
    total = head.height
    if total > ROWS_SHOWN:
        head = head.head(ROWS_SHOWN)
        total = _read(reader, "cycle_count", f.start, f.end, business_hours=f.business, **reads, **extra)
        st.caption(f"The first {head.height:,} of {total:,} cycles (oldest first); the CSV has every one.")
    shown = _with_customers(actor, head).select(
        "open", "customer", "channel_name", "cycle_number", "started_at", "accepted_by_email", "first_response_at",
        "first_responder_email", "completed_at", "first_response_ms", "resolution_ms", "first_response_sla_status",
        "count_unanswered_turns")
    st.dataframe(_readable(shown), hide_index=True, width="stretch", key=f"cycles_{key}",
                 column_config={"Open": st.column_config.LinkColumn("Open", display_text="Open thread")})

    def every_row() -> pl.DataFrame:  # read again, not cached: every cycle, each customer looked up
        rows = reader.read("cycle_rows", f.start, f.end, business_hours=f.business, **reads, **extra)
        return _with_customers(actor, rows).select("customer", *queries.CYCLE_COLUMNS)

    _csv_on_click(every_row, "conversation_cycles", key, total)


def _with_customers(actor: Actor, rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` (cycles) with the customer's name and a link that opens the thread in the inbox."""
    names = deps.call(customer_names, actor, rows["conversation_id"].unique().to_list())
    names = {cid: visible(name) for cid, name in names.items()}  # customer-supplied: hidden characters shown
    return rows.with_columns(
        pl.col("conversation_id").replace_strict(names, default="(not visible to you)", return_dtype=pl.Utf8)
        .alias("customer"),
        # the inbox is every role's default page, served at the root (Streamlit answers /inbox with
        # "page not found"), so the thread opens at /?c=<id>
        pl.format("/?c={}", pl.col("conversation_id")).alias("open"))


def _date_range(picked: Any, today: date) -> tuple[date, date]:
    """``st.date_input`` gives one date, a 1-tuple while picking, or a 2-tuple."""
    if isinstance(picked, date):
        return picked, picked
    values = [d for d in picked if isinstance(d, date)]
    if not values:
        return today, today
    return values[0], values[-1]


def _filters(reader: AnalyticsReader) -> Filters:
    channels = _read(reader, "channels")
    names = dict(zip(channels["channel_name"].to_list(), channels["channel_id"].to_list(), strict=True))
    agents = [a for a in _read(reader, "agents")["user_email"].to_list() if a]
    c1, c2, c3, c4 = st.columns([2.2, 2.6, 2, 1.2])
    today = date.today()
    picked = c1.date_input("Days (organization's timezone)", (today - timedelta(days=6), today),
                           key="analytics_days")
    start, end = _date_range(picked, today)
    chosen = c2.multiselect("Channels", list(names), key="analytics_channels", placeholder="All channels")
    agent = c3.selectbox("Agent", [ALL_AGENTS, *agents], key="analytics_agent")
    business = c4.toggle("Business hours", key="analytics_business",
                         help="Count only the time inside the business-hours calendar (nights, weekends, "
                              "holidays left out)")
    return Filters(start, end, tuple(int(names[n]) for n in chosen), None if agent == ALL_AGENTS else str(agent),
                   bool(business))


def page() -> None:
    actor = signin.page_actor()
    st.title("Analytics")
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
    f = _filters(reader)
    if f.end < f.start:
        st.error("The first day is after the last one.")
        return
    try:
        _headline(reader, f)
        metric = str(st.selectbox("Time metric (trends and distribution)", list(METRICS),
                                  format_func=METRICS.__getitem__, key="analytics_metric"))
        st.caption(TIME_METRICS_BY_NAME[metric].definition)
        # only the open tab runs its reads (a rerun when another is picked); the open tab is in the URL
        # (?tab=SLA), so a refresh or a shared link opens the same one
        sections: dict[str, Callable[[], None]] = {
            "Agents": lambda: _agents(reader, f),
            "Channels": lambda: _channels(reader, f),
            "Trends": lambda: _trends(reader, f, metric),
            "Distribution": lambda: _distribution(reader, f, metric),
            "Weekday × hour": lambda: _heatmap(reader, f),
            "SLA": lambda: _sla(reader, f),
            "Live queue": lambda: _live(reader, f),
            "All conversations": lambda: _cycles(reader, actor, f, "Every conversation cycle started in the range",
                                                 {}, "all"),
        }
        tabs = st.tabs(list(sections), key=TAB, on_change="rerun", bind="query-params")
        for tab, section in zip(tabs, sections.values(), strict=True):
            if tab.open:
                with tab:
                    section()
        drill = st.session_state.get(DRILL)
        if drill:
            st.divider()
            criteria = {k: v for k, v in drill.items() if k != "title"}
            _cycles(reader, actor, f, str(drill["title"]), criteria, "drill")
            if st.button("Close the list", key="analytics_drill_close"):
                st.session_state.pop(DRILL, None)
                st.rerun()
    except SwitchboardError as exc:
        st.error(str(exc))
