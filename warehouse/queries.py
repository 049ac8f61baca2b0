"""Read API over the published warehouse for the app and notebooks: polars DataFrames.

:func:`connect` is the one entry point: the lake of ``path`` (``WAREHOUSE_PATH``, see
:mod:`warehouse.lake`) is attached read-only once per process, and each ``with connect(path)`` is a
cursor of its own (DuckDB connections are not thread-safe) in one read transaction: every statement
in the block reads the same committed snapshot, the last complete build when the block started. A
build never blocks a reader and a reader never blocks a build. Dates are the organization's local
dates, both ends inclusive. Filters are bound parameters; identifiers come only from the metric
catalogue (:mod:`warehouse.metrics`) and the constants below.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from warehouse.errors import WarehouseNotBuilt as WarehouseNotBuilt  # re-exported: readers catch it here
from warehouse.lake import ALIAS, Lake, attach, no_progress_bar, read_pointer
from warehouse.lake import snapshot_id as lake_snapshot_id
from warehouse.metrics import COUNT, DURATION_UNIT, STATS, TIME_METRICS_BY_NAME
from warehouse.state import read_state

GROUPS = ("agent", "channel", "day")


_attached: dict[Lake, duckdb.DuckDBPyConnection] = {}
_attach_lock = threading.Lock()


def _reader(lake: Lake) -> duckdb.DuckDBPyConnection:
    """This process's read-only DuckDB with ``lake`` attached (attaching costs ~0.2 s: done once)."""
    with _attach_lock:
        con = _attached.get(lake)
        if con is None:
            con = duckdb.connect()
            no_progress_bar(con)
            attach(lake, con, read_only=True)
            _attached[lake] = con
        return con


@contextmanager
def connect(path: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only cursor on the published warehouse, reading one snapshot, closed on exit.

    :class:`WarehouseNotBuilt` when no build was ever published at ``path``.
    """
    cur = _reader(read_pointer(path)).cursor()
    try:
        cur.execute(f"use {ALIAS}")  # (a cursor does not inherit its connection's USE)
        no_progress_bar(cur)
        cur.execute("set TimeZone = 'UTC'")
        cur.execute("begin transaction")
        yield cur
    finally:
        cur.close()  # ends (rolls back) the read transaction


def snapshot_id(path: Path | str) -> int:
    """The published snapshot's id (it changes with every build); -1 if nothing was built."""
    try:
        with connect(path) as con:
            return lake_snapshot_id(con)
    except WarehouseNotBuilt:
        return -1


# where a read reads: a warehouse path (its own snapshot), or a cursor of ``connect`` (several reads of
# one snapshot, one catalog look-up)
Source = Path | str | duckdb.DuckDBPyConnection


def query(path: Source, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
    """Run one read-only SQL statement with bound parameters (for notebooks and ad-hoc use)."""
    if isinstance(path, duckdb.DuckDBPyConnection):
        return path.execute(sql, list(params or [])).pl()
    with connect(path) as con:
        return con.execute(sql, list(params or [])).pl()


def _channel_filter(ids: Sequence[int] | None, column: str = "channel_id") -> tuple[str, list[Any]]:
    if not ids:
        return "", []
    return f" and {column} in (select unnest(?::bigint[]))", [list(ids)]


def _agent_filter(agent: str | None, *columns: str) -> tuple[str, list[Any]]:
    """Rows crediting (or involving, with several columns) one agent, by email; no filter for None."""
    if not agent:
        return "", []
    return f" and ? in ({', '.join(columns)})", [agent]


def build_state(path: Path | str) -> dict[str, Any]:
    """When and how the published warehouse was built ({} if it has no state)."""
    with connect(path) as con:
        return read_state(con)


def organizations(path: Path | str) -> pl.DataFrame:
    return query(path, "select organization_id, organization_name, timezone, sla_first_response_ms, "
                       "sla_resolution_ms from stg_organizations order by organization_id")


def channels(path: Path | str, org_id: int) -> pl.DataFrame:
    return query(path, "select channel_id, channel_key, channel_name, provider from stg_channels "
                       "where organization_id = ? order by channel_name", [org_id])


def agents(path: Path | str, org_id: int) -> pl.DataFrame:
    return query(path, "select user_id, user_email, user_name, user_role from stg_users "
                       "where organization_id = ? order by user_email", [org_id])


def time_metric_stats(path: Source, org_id: int, metric: str, start: date, end: date, *,
                      group_by: str | None = None, business_hours: bool = False,
                      channel_ids: Sequence[int] | None = None, agent: str | None = None) -> pl.DataFrame:
    """count, mean, median, p90, min, max of one time metric (ms), optionally per agent/channel/day.

    ``business_hours`` uses the business-hours column (the channel's current calendar); ``agent`` (an
    email) keeps the values credited to that agent. Per day, for all channels or one, the figures are
    read from the ``time_metric_daily`` mart (a row per day); otherwise — medians over several days or
    several chosen channels cannot be combined from daily rows — they are computed from the
    occurrences (:func:`time_metric_stats_from_rows`). Both give the same rows.
    """
    _check_metric(metric, group_by)
    if group_by == "day" and len(channel_ids or ()) <= 1:
        return _daily_metric_stats(path, org_id, metric, start, end, business_hours=business_hours,
                                   channel_id=channel_ids[0] if channel_ids else None, agent=agent)
    return time_metric_stats_from_rows(path, org_id, metric, start, end, group_by=group_by,
                                       business_hours=business_hours, channel_ids=channel_ids, agent=agent)


def _check_metric(metric: str, group_by: str | None) -> None:
    if metric not in TIME_METRICS_BY_NAME:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(TIME_METRICS_BY_NAME)}")
    if group_by not in (None, *GROUPS):
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)} or None")


def time_metric_stats_from_rows(path: Source, org_id: int, metric: str, start: date, end: date, *,
                                group_by: str | None = None, business_hours: bool = False,
                                channel_ids: Sequence[int] | None = None, agent: str | None = None) -> pl.DataFrame:
    """:func:`time_metric_stats` aggregated from the occurrences (the row-level mart) for any filter."""
    return time_metric_stats_many(path, org_id, [metric], start, end, group_by=group_by,
                                  business_hours=business_hours, channel_ids=channel_ids, agent=agent)[metric]


def _daily_metric_stats(path: Source, org_id: int, metric: str, start: date, end: date, *,
                        business_hours: bool, channel_id: int | None, agent: str | None) -> pl.DataFrame:
    """:func:`time_metric_stats` per day for all channels or one, all agents or one: the same rows,
    read from the ``time_metric_daily`` mart (one row per day) instead of aggregating the occurrences."""
    stem = "value_business" if business_hours else "value"
    count = "count_business_values" if business_hours else "count_values"
    stats = ", ".join([f"{count} as {COUNT.name}"]
                      + [f"{s.column_prefix}_{stem}_{DURATION_UNIT} as {s.name}_{DURATION_UNIT}" for s in STATS])
    where = ["organization_id = ?", "metric = ?", "metric_date between ? and ?"]
    params: list[Any] = [org_id, metric, start, end]
    where.append("is_all_channels" if channel_id is None else "not is_all_channels and channel_id = ?")
    params += [] if channel_id is None else [int(channel_id)]
    where.append("is_all_agents" if not agent else "not is_all_agents and agent_email = ?")
    params += [agent] if agent else []
    return query(path, f"select metric_date as day, {stats} from time_metric_daily "  # noqa: S608 (identifiers from the catalogue, values bound)
                       f"where {' and '.join(where)} order by day", params)


def time_metric_values(path: Path | str, org_id: int, metric: str, start: date, end: date, *,
                       business_hours: bool = False, channel_ids: Sequence[int] | None = None,
                       agent: str | None = None) -> pl.DataFrame:
    """The values themselves of one time metric (``value_ms``, one row per occurrence): distributions."""
    m = TIME_METRICS_BY_NAME[metric]
    value = m.business_column if business_hours else m.column
    ch_sql, ch_params = _channel_filter(channel_ids)
    ag_sql, ag_params = _agent_filter(agent, m.credited_to)
    return query(path, (
        f"select conversation_id, cycle_number, {m.credited_to} as agent, channel_name, {m.day_column} as day, "  # noqa: S608
        f"{value} as value_ms from {m.mart} where organization_id = ? and {m.day_column} between ? and ? "
        f"and {m.row_filter}{ch_sql}{ag_sql} order by {value}"
    ), [org_id, start, end, *ch_params, *ag_params])


# the distribution's histogram: equal bins over the values' range, or (log scale) bins of equal ratio
LINEAR_BINS = 40
LOG_BINS_PER_DECADE = 8


def time_metric_distribution(path: Path | str, org_id: int, metric: str, start: date, end: date, *,
                             business_hours: bool = False, channel_ids: Sequence[int] | None = None,
                             agent: str | None = None, log_scale: bool = True) -> dict[str, pl.DataFrame]:
    """The distribution of one time metric's values, aggregated in the warehouse (the values themselves
    — millions of rows at 10 M messages — never leave it), from one snapshot, in two scans:

    * ``summary``: one row over every value: ``count``, ``count_zero``, ``min_ms``, ``median_ms``,
      ``p90_ms``, ``max_ms``;
    * ``agents``: per agent (credited to) the box plot's figures — ``count``, ``min_ms``, ``p5_ms``,
      ``q1_ms``, ``median_ms``, ``q3_ms``, ``p95_ms``, ``max_ms`` (the page draws the whiskers at the
      5th and 95th percentiles); quantiles interpolated like :data:`warehouse.metrics.STATS`;
    * ``bins``: ``bin``, ``lower_ms``, ``upper_ms`` (the bin holds ``lower_ms <= value < upper_ms``; the
      last linear bin also its upper end), ``count``. Linear: ``LINEAR_BINS`` equal bins from the smallest
      to the largest value; log scale: ``LOG_BINS_PER_DECADE`` bins per factor of ten, positive values
      only (zero cannot be drawn on a log scale; ``summary.count_zero`` says how many there are).
    """
    m = TIME_METRICS_BY_NAME[metric]
    value = m.business_column if business_hours else m.column
    ch_sql, ch_params = _channel_filter(channel_ids)
    ag_sql, ag_params = _agent_filter(agent, m.credited_to)
    values = (f"select {m.credited_to} as agent, {value} as v from {m.mart} "  # noqa: S608 (identifiers from the catalogue, values bound)
              f"where organization_id = ? and {m.day_column} between ? and ? and {m.row_filter}{ch_sql}{ag_sql}")
    params = [org_id, start, end, *ch_params, *ag_params]
    # per agent and over all values in one scan (grouping sets); the whole's median and p90 from it too
    grouped = (f"with v as ({values}) select agent, grouping(agent) = 1 as is_all, count(v) as count, "  # noqa: S608 (identifiers from the catalogue)
               "count(v) filter (where v = 0) as count_zero, min(v) as min_ms, "
               "quantile_cont(v, [0.05, 0.25, 0.5, 0.75, 0.9, 0.95]) as q, max(v) as max_ms "
               "from v group by grouping sets ((agent), ()) order by agent")
    with connect(path) as con:
        rows = query(con, grouped, params)
        q = pl.col("q").list
        whole = rows.filter(pl.col("is_all"))
        summary = whole.select("count", "count_zero", "min_ms", q.get(2).alias("median_ms"),
                               q.get(4).alias("p90_ms"), "max_ms") if not whole.is_empty() else pl.DataFrame()
        agents = rows.filter(~pl.col("is_all")).select(
            "agent", "count", "min_ms", q.get(0).alias("p5_ms"), q.get(1).alias("q1_ms"), q.get(2).alias("median_ms"),
            q.get(3).alias("q3_ms"), q.get(5).alias("p95_ms"), "max_ms")
        head = summary.row(0, named=True) if not summary.is_empty() else {"count": 0}
        if not head["count"]:
            summary = pl.DataFrame({"count": [0], "count_zero": [0], "min_ms": [None], "median_ms": [None],
                                    "p90_ms": [None], "max_ms": [None]})
            return {"summary": summary, "agents": agents.clear(), "bins": pl.DataFrame(
                schema={"bin": pl.Int32, "lower_ms": pl.Float64, "upper_ms": pl.Float64, "count": pl.Int64})}
        # every bin from the lowest to the highest one with a value, the empty ones with count 0 (a histogram
        # whose empty bins were left out would hide its gaps)
        complete = ("k as (select unnest(generate_series(min(bin), max(bin))) as bin from c) "
                    "select k.bin, {lower} as lower_ms, {upper} as upper_ms, coalesce(c.count, 0) as count "
                    "from k left join c using (bin) order by bin")
        if log_scale:
            bins_sql = (f"with c as (select floor(log10(v) * {LOG_BINS_PER_DECADE})::int as bin, count(*) as count "  # noqa: S608 (identifiers from the catalogue)
                        f"from ({values}) where v > 0 group by bin), " + complete.format(
                            lower=f"power(10, k.bin / {LOG_BINS_PER_DECADE})",
                            upper=f"power(10, (k.bin + 1) / {LOG_BINS_PER_DECADE})"))
            bins_params: list[Any] = params
        else:  # the range is the whole's, from the scan above
            width = f"(greatest(?::double - ?::double, 1) / {LINEAR_BINS})"
            bins_sql = (f"with c as (select least(floor((v - ?) / {width}), {LINEAR_BINS - 1})::int as bin, "  # noqa: S608 (identifiers from the catalogue)
                        f"count(*) as count from ({values}) group by bin), " + complete.format(
                            lower=f"? + k.bin * {width}", upper=f"? + (k.bin + 1) * {width}"))
            lo, hi = head["min_ms"], head["max_ms"]
            bins_params = [lo, hi, lo, *params, lo, hi, lo, lo, hi, lo]
        bins = query(con, bins_sql, bins_params)
    return {"summary": summary, "agents": agents, "bins": bins}


def response_times(path: Path | str, org_id: int, start: date, end: date, *, group_by: str | None = None,
                   business_hours: bool = False, channel_ids: Sequence[int] | None = None) -> pl.DataFrame:
    """Response-time statistics per customer turn (+ unanswered turns per channel/day), of one snapshot."""
    with connect(path) as con:
        return _response_times(con, org_id, start, end, group_by=group_by, business_hours=business_hours,
                               channel_ids=channel_ids)


def _response_times(con: duckdb.DuckDBPyConnection, org_id: int, start: date, end: date, *, group_by: str | None,
                    business_hours: bool, channel_ids: Sequence[int] | None) -> pl.DataFrame:
    stats = time_metric_stats(con, org_id, "response", start, end, group_by=group_by,
                              business_hours=business_hours, channel_ids=channel_ids)
    if group_by == "agent":
        return stats
    # the counts add up over channels and days: summed from the daily channel sheet (a day or channel
    # appears when a customer turn started there, as when counted from the turns themselves)
    key = {"channel": "channel_name", "day": "metric_date", None: None}[group_by]
    ch_sql, ch_params = _channel_filter(channel_ids)
    sel = f"{key} as {group_by}, " if key else ""
    grp = "group by all having sum(count_customer_turns) > 0" if key else ""
    unanswered = query(con, (
        f"select {sel}coalesce(sum(count_unanswered_turns), 0)::bigint as count_unanswered, "  # noqa: S608
        f"coalesce(sum(count_waiting_turns), 0)::bigint as count_waiting from channel_daily_metrics "
        f"where organization_id = ? and metric_date between ? and ?{ch_sql} {grp}"
    ), [org_id, start, end, *ch_params])
    if key:
        return stats.join(unanswered, on=group_by, how="full", coalesce=True).sort(group_by)
    return pl.concat([stats, unanswered], how="horizontal")


def _mart_rows(path: Path | str, mart: str, day_column: str, order: str, org_id: int, start: date, end: date,
               ids: Sequence[int] | None, id_column: str = "channel_id") -> pl.DataFrame:
    """Every column of ``mart``'s rows of the organization whose ``day_column`` is in the range."""
    id_sql, id_params = _channel_filter(ids, id_column)
    return query(path, f"select * from {mart} where organization_id = ? "  # noqa: S608 (identifiers from code, values bound)
                       f"and {day_column} between ? and ?{id_sql} order by {order}", [org_id, start, end, *id_params])


def response_time_rows(path: Path | str, org_id: int, start: date, end: date, *,
                       channel_ids: Sequence[int] | None = None) -> pl.DataFrame:
    """The customer turns themselves (one row per turn) started in the date range."""
    return _mart_rows(path, "response_times", "turn_started_local_date", "turn_started_at", org_id, start, end,
                      channel_ids)


def conversation_cycles(path: Path | str, org_id: int, start: date, end: date, *,
                        channel_ids: Sequence[int] | None = None) -> pl.DataFrame:
    """Cycles started in the date range (one row per conversation cycle)."""
    return _mart_rows(path, "conversation_cycles", "started_local_date", "started_at", org_id, start, end,
                      channel_ids)


# the columns of a drill-down / export row: one conversation cycle, as a manager reads it
CYCLE_COLUMNS = (
    "conversation_id", "cycle_number", "channel_id", "channel_name", "provider", "started_at", "started_local_date",
    "accepted_at", "accepted_by_email", "first_response_at", "first_responder_email", "completed_at",
    "completed_by_email", "handled_by_email", "is_open", "is_reopened", "count_customer_messages",
    "count_agent_messages", "count_bot_messages", "count_unanswered_turns", "queue_ms", "first_response_ms",
    "handle_ms", "resolution_ms", "queue_business_ms", "first_response_business_ms", "handle_business_ms",
    "resolution_business_ms", "first_response_sla_status", "resolution_sla_status",
    "first_response_business_sla_status", "resolution_business_sla_status",
)
INVOLVED = ("accepted_by_email", "first_responder_email", "handled_by_email", "completed_by_email")
SLA_KINDS = ("first_response", "resolution")


def cycle_rows(path: Path | str, org_id: int, start: date, end: date, *, channel_ids: Sequence[int] | None = None,
               agent: str | None = None, day: date | None = None, weekday: int | None = None,
               hour: int | None = None, sla_missed: str | None = None, business_hours: bool = False,
               limit: int | None = None) -> pl.DataFrame:
    """The conversation cycles behind a figure, one row each (drill-down and CSV export).

    Cycles started in the date range (or on ``day``), of the channels, that ``agent`` (email) accepted,
    first answered, handled or completed; with ``weekday`` (1 = Monday) / ``hour`` (local): the cycles
    with a customer turn that started in that cell of the weekday x hour grid within the range; with
    ``sla_missed`` (first_response | resolution): those breached or unanswered (business-hours status
    when ``business_hours``). Oldest first; the first ``limit`` of them (``cycle_count``: how many in all).
    """
    where, params = _cycle_filter(org_id, start, end, channel_ids=channel_ids, agent=agent, day=day,
                                  weekday=weekday, hour=hour, sla_missed=sla_missed, business_hours=business_hours)
    limit_sql = " limit ?" if limit is not None else ""
    return query(path, (
        f"select {', '.join(CYCLE_COLUMNS)} from conversation_cycles where {where}"  # noqa: S608
        f" order by started_at, conversation_id, cycle_number{limit_sql}"
    ), [*params, *([int(limit)] if limit is not None else [])])


def cycle_count(path: Path | str, org_id: int, start: date, end: date, *, channel_ids: Sequence[int] | None = None,
                agent: str | None = None, day: date | None = None, weekday: int | None = None,
                hour: int | None = None, sla_missed: str | None = None, business_hours: bool = False) -> int:
    """How many cycles ``cycle_rows`` lists for the same filters."""
    where, params = _cycle_filter(org_id, start, end, channel_ids=channel_ids, agent=agent, day=day,
                                  weekday=weekday, hour=hour, sla_missed=sla_missed, business_hours=business_hours)
    return int(query(path, f"select count(*) as n from conversation_cycles where {where}", params)["n"][0])  # noqa: S608


def _cycle_filter(org_id: int, start: date, end: date, *, channel_ids: Sequence[int] | None, agent: str | None,
                  day: date | None, weekday: int | None, hour: int | None, sla_missed: str | None,
                  business_hours: bool) -> tuple[str, list[Any]]:
    """The ``where`` of ``cycle_rows`` / ``cycle_count`` (SQL with ``?`` and its values)."""
    if sla_missed is not None and sla_missed not in SLA_KINDS:
        raise ValueError(f"sla_missed must be one of {', '.join(SLA_KINDS)}")
    where = ["organization_id = ?"]
    params: list[Any] = [org_id]
    if weekday is None and hour is None:
        where.append("started_local_date between ? and ?")
        params += [day or start, day or end]
    else:
        where.append(
            "(conversation_id, cycle_number) in (select conversation_id, cycle_number from response_times "
            "where organization_id = ? and turn_started_local_date between ? and ? "
            "and (?::integer is null or isodow(turn_started_local_date) = ?) "
            "and (?::integer is null or turn_started_local_hour = ?))")
        params += [org_id, start, end, weekday, weekday, hour, hour]
    ch_sql, ch_params = _channel_filter(channel_ids)
    ag_sql, ag_params = _agent_filter(agent, *INVOLVED)
    sla_sql = ""
    if sla_missed:
        sla_sql = f" and {sla_missed}{'_business' if business_hours else ''}_sla_status in ('breached', 'unanswered')"
    return " and ".join(where) + ch_sql + ag_sql + sla_sql, [*params, *ch_params, *ag_params]


def headline(path: Path | str, org_id: int, start: date, end: date, *, channel_ids: Sequence[int] | None = None,
             agent: str | None = None, business_hours: bool = False) -> dict[str, Any]:
    """The page's key figures for a period: cycles started and completed, first response and response
    median / p90, the first-response SLA share (over decided cycles) and unanswered turns. With
    ``agent``: the cycles that agent was involved in and the times credited to them."""
    with connect(path) as con:  # one snapshot for every figure
        return _headline(con, org_id, start, end, channel_ids=channel_ids, agent=agent, business_hours=business_hours)


def _headline(con: duckdb.DuckDBPyConnection, org_id: int, start: date, end: date, *,
              channel_ids: Sequence[int] | None, agent: str | None, business_hours: bool) -> dict[str, Any]:
    ch_sql, ch_params = _channel_filter(channel_ids)
    ag_sql, ag_params = _agent_filter(agent, *INVOLVED)
    status = f"first_response{'_business' if business_hours else ''}_sla_status"
    row = query(con, (
        "select count(*) filter (where started_local_date between ? and ?) as count_started, "  # noqa: S608
        "count(*) filter (where completed_local_date between ? and ?) as count_completed, "
        f"count(*) filter (where started_local_date between ? and ? and {status} = 'met') as count_sla_met, "
        f"count(*) filter (where started_local_date between ? and ? and {status} in ('met', 'breached', 'unanswered')) "
        "as count_sla_decided, "
        "coalesce(sum(count_unanswered_turns) filter (where started_local_date between ? and ?), 0) "
        "as count_unanswered_turns "
        "from conversation_cycles where organization_id = ? "
        # only the period's cycles are scanned (each figure filters again to its own date)
        f"and (started_local_date between ? and ? or completed_local_date between ? and ?){ch_sql}{ag_sql}"
    ), [start, end] * 5 + [org_id, start, end, start, end, *ch_params, *ag_params]).row(0, named=True)
    out: dict[str, Any] = dict(row)
    out["first_response_sla_share"] = (row["count_sla_met"] / row["count_sla_decided"]
                                       if row["count_sla_decided"] else None)
    for metric, frame in time_metric_stats_many(con, org_id, ("first_response", "response"), start, end,
                                                business_hours=business_hours, channel_ids=channel_ids,
                                                agent=agent).items():
        stats = frame.row(0, named=True)
        out[f"median_{metric}_ms"] = stats["median_ms"]
        out[f"p90_{metric}_ms"] = stats["p90_ms"]
        out[f"count_{metric}"] = stats["count"]
    return out


def time_metric_stats_many(path: Source, org_id: int, metrics: Sequence[str], start: date, end: date, *,
                           group_by: str | None = None, business_hours: bool = False,
                           channel_ids: Sequence[int] | None = None,
                           agent: str | None = None) -> dict[str, pl.DataFrame]:
    """:func:`time_metric_stats_from_rows` of several metrics at once: metric → its frame. The metrics read
    from the same mart (with the same day and agent columns) share one scan of it, each statistic
    filtered to that metric's rows — the headline's first response and response, the agents tab's first
    response and response: one scan instead of two."""
    for metric in metrics:
        _check_metric(metric, group_by)
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for metric in dict.fromkeys(metrics):
        m = TIME_METRICS_BY_NAME[metric]
        groups.setdefault((m.mart, m.day_column, m.credited_to), []).append(m)
    out: dict[str, pl.DataFrame] = {}
    with connect(path) if not isinstance(path, duckdb.DuckDBPyConnection) else nullcontext(path) as con:
        for (mart, day, credited_to), ms in groups.items():
            key = {"agent": credited_to, "channel": "channel_name", "day": day, None: None}[group_by]
            ch_sql, ch_params = _channel_filter(channel_ids)
            ag_sql, ag_params = _agent_filter(agent, credited_to)
            cols = [f"{key} as {group_by}"] if key else []
            for i, m in enumerate(ms):
                value = m.business_column if business_hours else m.column
                cols += [f"count(*) filter (where {m.row_filter}) as c{i}__rows",
                         f"{COUNT.render(value, m.row_filter)} as c{i}_{COUNT.name}"]
                cols += [f"{st.render(value, m.row_filter)} as c{i}_{st.name}_{m.unit}" for st in STATS]
            either = " or ".join(f"({m.row_filter})" for m in ms)
            rows = query(con, (
                f"select {', '.join(cols)} from {mart} where organization_id = ? "  # noqa: S608 (identifiers from the catalogue, values bound)
                f"and {day} between ? and ? and ({either}){ch_sql}{ag_sql} "
                f"{'group by all order by 1' if key else ''}"
            ), [org_id, start, end, *ch_params, *ag_params])
            for i, m in enumerate(ms):
                mine = rows.select(([group_by] if key else []) + [
                    pl.col(c).alias(c.removeprefix(f"c{i}_")) for c in rows.columns if c.startswith(f"c{i}_")])
                if key:  # the groups with occurrences of this metric, as its own read would return them
                    mine = mine.filter(pl.col("_rows") > 0)
                out[m.name] = mine.drop("_rows")
    return {metric: out[metric] for metric in metrics}


def agent_daily(path: Path | str, org_id: int, start: date, end: date, *,
                agent_ids: Sequence[int] | None = None) -> pl.DataFrame:
    return _mart_rows(path, "agent_daily_metrics", "metric_date", "metric_date, agent_email", org_id, start, end,
                      agent_ids, "agent_user_id")


def channel_daily(path: Path | str, org_id: int, start: date, end: date, *,
                  channel_ids: Sequence[int] | None = None) -> pl.DataFrame:
    return _mart_rows(path, "channel_daily_metrics", "metric_date", "metric_date, channel_name", org_id, start, end,
                      channel_ids)


def hourly_volume(path: Path | str, org_id: int, start: date, end: date, *,
                  channel_ids: Sequence[int] | None = None) -> pl.DataFrame:
    """Weekday (1 = Monday) x local hour heatmap over the date range."""
    ch_sql, ch_params = _channel_filter(channel_ids)
    return query(path, (
        "select day_of_week, hour_of_day, sum(total_messages_received)::bigint as total_messages_received, "  # noqa: S608
        "sum(total_messages_sent)::bigint as total_messages_sent, sum(count_turns)::bigint as count_turns, "
        "sum(count_responses)::bigint as count_responses, "
        "sum(sum_response_ms) / nullif(sum(count_responses), 0) as avg_response_ms, "
        "sum(sum_response_business_ms) / nullif(sum(count_responses), 0) as avg_response_business_ms "
        "from hourly_volume where organization_id = ? and metric_date between ? and ?"
        f"{ch_sql} group by all order by day_of_week, hour_of_day"
    ), [org_id, start, end, *ch_params])


def sla_daily(path: Path | str, org_id: int, start: date, end: date, *,
              channel_ids: Sequence[int] | None = None) -> pl.DataFrame:
    return _mart_rows(path, "sla_daily", "metric_date", "metric_date, channel_name", org_id, start, end, channel_ids)


def sla_breaches(path: Path | str, org_id: int, start: date, end: date, *, kind: str = "first_response",
                 business_hours: bool = False, limit: int = 500) -> pl.DataFrame:
    """Cycles that missed a target (``kind`` = first_response | resolution), worst first."""
    if kind not in ("first_response", "resolution"):
        raise ValueError("kind must be first_response or resolution")
    status = f"{kind}{'_business' if business_hours else ''}_sla_status"
    value = f"{kind}{'_business' if business_hours else ''}_ms"
    return query(path, (
        f"select conversation_id, cycle_number, channel_name, started_at, first_response_at, "  # noqa: S608
        f"first_responder_email, completed_at, {value} as duration_ms, {status} as sla_status "
        f"from conversation_cycles where organization_id = ? and started_local_date between ? and ? "
        f"and {status} in ('breached', 'unanswered') order by {value} desc nulls first limit ?"
    ), [org_id, start, end, int(limit)])


def live_queue(path: Path | str, org_id: int, *, channel_ids: Sequence[int] | None = None,
               limit: int | None = None) -> pl.DataFrame:
    """Open conversations as of the last build, longest-waiting first (the first ``limit`` of them)."""
    ch_sql, ch_params = _channel_filter(channel_ids)
    limit_sql = " limit ?" if limit is not None else ""
    return query(path, f"select * from live_queue where organization_id = ?{ch_sql} "  # noqa: S608
                       f"order by is_unattended desc, waiting_since nulls last, conversation_id{limit_sql}",
                 [org_id, *ch_params, *([int(limit)] if limit is not None else [])])


def live_queue_counts(path: Path | str, org_id: int, *, channel_ids: Sequence[int] | None = None) -> dict[str, int]:
    """How many conversations are open, unassigned and unattended (waiting for a reply), as of the last build."""
    ch_sql, ch_params = _channel_filter(channel_ids)
    row = query(path, "select count(*) as open, count(*) filter (where is_unassigned) as unassigned, "  # noqa: S608
                      "count(*) filter (where is_unattended) as unattended "
                      f"from live_queue where organization_id = ?{ch_sql}", [org_id, *ch_params]).row(0, named=True)
    return {k: int(v or 0) for k, v in row.items()}


def agent_load(path: Path | str, org_id: int) -> pl.DataFrame:
    """Per agent: open conversations held, how many wait for a reply, presence (as of the last build)."""
    return query(path, (
        "select assigned_user_id as agent_user_id, assignee_email as agent_email, "
        "any_value(assignee_presence_state) as presence_state, count(*) as open_conversations, "
        "count(*) filter (where is_unattended) as unattended_conversations, "
        "max(waiting_ms) as longest_waiting_ms from live_queue "
        "where organization_id = ? and assigned_user_id is not null group by all order by open_conversations desc"
    ), [org_id])
