"""Business hours and local days, generated from the CURRENT calendars at build time.

Organizations keep an IANA timezone and business hours like
``{"mon": [["09:00", "17:00"]], ..., "holidays": ["2026-12-25"]}`` (a missing weekday is closed; a
calendar with no weekday at all means "always open"); a channel may override the hours (it keeps its
organization's timezone). Two small tables turn that into plain joins for the SQL models:

* ``cal_utc_offsets(timezone, quarter_at, utc_offset_seconds)``: the UTC offset of every quarter hour
  of the data's time range (all offsets and DST transitions fall on quarter hours), so that a local
  time is ``ts + offset`` through an equi-join on ``time_bucket(15 min, ts)`` — as fast as plain
  arithmetic, unlike per-row ``timezone(col, ts)``;
* ``cal_business_intervals(channel_id, open_at, close_at, open_ms, open_ms_before)``: every open span
  in UTC with the business time accumulated before it. The business clock of an instant ``t`` is
  ``open_ms_before + clamp(t - open_at, 0, open_ms)`` of the last span opening at or before ``t``
  (an ASOF join), and the business duration of ``[a, b]`` is ``clock(b) - clock(a)``: exact to the
  millisecond across nights, weekends, holidays and daylight-saving changes.

:func:`business_ms` is the same definition in plain Python (used by tests and for ad-hoc checks).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
QUARTER = timedelta(minutes=15)
BUCKET_MINUTES = 15
BUCKET_US = BUCKET_MINUTES * 60 * 1_000_000


def bucket_sql(ts: str) -> str:
    """SQL: the quarter hour (UTC grid) holding the instant ``ts`` — the key of both calendar tables.

    Integer arithmetic on epoch microseconds: a ``time_bucket`` or ``::timestamp`` cast goes through
    ICU per row (~1 s per 10 M rows).
    """
    return f"make_timestamptz(epoch_us({ts}) // {BUCKET_US} * {BUCKET_US})"


def _parse_hhmm(value: str) -> tuple[int, int]:
    hh, _, mm = str(value).partition(":")
    return int(hh), int(mm or 0)


def _local(d: date, hhmm: str, tz: ZoneInfo) -> datetime:
    hh, mm = _parse_hhmm(hhmm)
    if hh >= 24:
        return datetime.combine(d + timedelta(days=1), time(0, mm), tzinfo=tz)
    return datetime.combine(d, time(hh, mm), tzinfo=tz)


def open_spans(hours: dict[str, Any] | None, timezone: str, start: date, end: date) -> Iterator[
        tuple[datetime, datetime]]:
    """Open spans (UTC, merged, ordered) of the local days ``start``..``end`` inclusive."""
    tz = ZoneInfo(timezone)
    hours = hours or {}
    holidays = {str(h) for h in hours.get("holidays", [])}
    always = not any(day in hours for day in DAYS)
    spans: list[tuple[datetime, datetime]] = []
    d = start
    while d <= end:
        if d.isoformat() not in holidays:
            day_spans = [["00:00", "24:00"]] if always else hours.get(DAYS[d.weekday()], [])
            for s, e in day_spans:
                a = _local(d, s, tz).astimezone(UTC)
                b = _local(d, e, tz).astimezone(UTC)
                if b > a:
                    spans.append((a, b))
        d += timedelta(days=1)
    spans.sort()
    merged: list[tuple[datetime, datetime]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    yield from merged


def business_ms(start: datetime, end: datetime, hours: dict[str, Any] | None, timezone: str) -> int:
    """Business milliseconds between two aware instants (0 if ``end <= start``)."""
    if end <= start:
        return 0
    tz = ZoneInfo(timezone)
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    total = timedelta()
    for a, b in open_spans(hours, timezone, first, last):
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            total += hi - lo
    return int(total / timedelta(milliseconds=1))


def local_date(ts: datetime, timezone: str) -> date:
    return ts.astimezone(ZoneInfo(timezone)).date()


def fingerprint(calendars: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(calendars, sort_keys=True).encode()).hexdigest()


def build_calendar_tables(con: duckdb.DuckDBPyConnection, calendars: dict[str, Any],
                          start: datetime, end: datetime) -> None:
    """(Re)create ``cal_utc_offsets`` and ``cal_business_intervals`` for ``[start, end]``.

    ``calendars`` is ``{"orgs": [[id, timezone, hours]], "channels": [[id, org_id, hours|None]]}``.
    """
    start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    end = end.astimezone(UTC) + timedelta(days=2)
    org_tz = {int(o[0]): str(o[1] or "UTC") for o in calendars["orgs"]}
    org_hours = {int(o[0]): o[2] for o in calendars["orgs"]}
    zones = sorted(set(org_tz.values()) | {"UTC"})

    con.execute("create or replace table cal_utc_offsets (timezone varchar, quarter_at timestamptz, "
                "utc_offset_seconds bigint)")
    for zone in zones:
        ZoneInfo(zone)  # unknown zones fail here with a clear error, not deep in ICU
        con.execute(
            "insert into cal_utc_offsets select ?, q, "
            "(epoch(timezone(?, q)) - epoch(q::timestamp))::bigint "
            "from (select unnest(generate_series(?::timestamptz, ?::timestamptz, interval 15 minutes)) q)",
            [zone, zone, start, end])

    rows: list[tuple[int, datetime, datetime, int, int]] = []
    first_day, last_day = start.date() - timedelta(days=1), end.date() + timedelta(days=1)
    for ch_id, org_id, override in calendars["channels"]:
        tz = org_tz.get(int(org_id), "UTC")
        hours = override if override else org_hours.get(int(org_id), {})
        before = 0
        for a, b in open_spans(hours, tz, first_day, last_day):
            ms = int((b - a) / timedelta(milliseconds=1))
            rows.append((int(ch_id), a, b, ms, before))
            before += ms
    con.execute("create or replace table cal_business_intervals (channel_id bigint, open_at timestamptz, "
                "close_at timestamptz, open_ms bigint, open_ms_before bigint)")
    if rows:
        import pyarrow as pa

        cols = list(zip(*rows, strict=True))
        tbl = pa.table({
            "channel_id": pa.array(cols[0], pa.int64()),
            "open_at": pa.array(cols[1], pa.timestamp("us", tz="UTC")),
            "close_at": pa.array(cols[2], pa.timestamp("us", tz="UTC")),
            "open_ms": pa.array(cols[3], pa.int64()),
            "open_ms_before": pa.array(cols[4], pa.int64()),
        })
        con.register("_cal", tbl)
        con.execute("insert into cal_business_intervals select * from _cal order by channel_id, open_at")
        con.unregister("_cal")
    build_business_buckets(con, start, end)


def build_business_buckets(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    """``cal_business_buckets``: the business clock by quarter hour (UTC grid), for equi-joins.

    For an instant ``t`` of the bucket ``q = floor(t, 15 min)``: ``clock(t) = clock_ms + clamp(t - s1_ms, 0,
    l1_ms) + clamp(t - s2_ms, 0, l2_ms)`` (epoch milliseconds), where ``clock_ms`` is the business clock at
    ``q`` and ``(s, l)`` are the (at most two) open spans inside the bucket (0, 0 when absent). Equal to the
    ASOF formula over ``cal_business_intervals`` (0 before a channel's first open span), without an
    ASOF join (a sort per use); a quarter hour with three or more open spans is refused.
    """
    con.execute(f"""
        create or replace table cal_business_buckets as
        with intervals as (select * from cal_business_intervals),
        grid as (
            select channel_id, unnest(generate_series(?::timestamptz, ?::timestamptz, interval {BUCKET_MINUTES} minutes)) as bucket_at
            from (select distinct channel_id from intervals)
        ),
        at_start as (
            select
                g.channel_id,
                g.bucket_at,
                coalesce(i.open_ms_before + least(greatest(epoch_ms(g.bucket_at) - epoch_ms(i.open_at), 0), i.open_ms), 0)
                    as clock_ms
            from grid as g
            asof left join intervals as i on i.channel_id = g.channel_id and g.bucket_at >= i.open_at
        ),
        pieces as (
            select
                i.channel_id,
                b.bucket_at,
                greatest(epoch_ms(i.open_at), epoch_ms(b.bucket_at)) as s_ms,
                least(epoch_ms(i.close_at), epoch_ms(b.bucket_at) + {BUCKET_MINUTES * 60_000})
                    - greatest(epoch_ms(i.open_at), epoch_ms(b.bucket_at)) as l_ms
            from intervals as i,
                unnest(generate_series(
                    {bucket_sql('i.open_at')},
                    i.close_at - interval 1 microsecond,
                    interval {BUCKET_MINUTES} minutes)) as b(bucket_at)
        ),
        per_bucket as (
            select
                channel_id,
                bucket_at,
                count(*) as n,
                list(struct_pack(s := s_ms, l := l_ms) order by s_ms) as spans
            from pieces
            where l_ms > 0
            group by all
        )
        select
            a.channel_id,
            a.bucket_at,
            a.clock_ms::bigint as clock_ms,
            coalesce(p.spans[1].s, 0)::bigint as s1_ms,
            coalesce(p.spans[1].l, 0)::bigint as l1_ms,
            coalesce(p.spans[2].s, 0)::bigint as s2_ms,
            coalesce(p.spans[2].l, 0)::bigint as l2_ms,
            coalesce(p.n, 0) as count_spans
        from at_start as a
        left join per_bucket as p on p.channel_id = a.channel_id and p.bucket_at = a.bucket_at
        order by a.channel_id, a.bucket_at
    """, [start, end])  # noqa: S608 (constants from code, values bound)
    row = con.execute("select channel_id, bucket_at from cal_business_buckets where count_spans > 2 limit 1").fetchone()
    if row:
        raise ValueError(f"business hours of channel {row[0]} open more than twice within the quarter hour "
                         f"starting {row[1]}: use open spans of at least 15 minutes")
