"""The quarter-hour business clock (cal_business_buckets) equals the reference business time.

The models join ``cal_business_buckets`` on (channel, quarter hour) instead of an ASOF join over
``cal_business_intervals``; here the bucket clock is checked against :func:`warehouse.calendar.business_ms`
(plain Python over the calendar) on many instants: minutes, seconds, span edges, nights, a holiday, a
daylight-saving change, a channel override, two spans within one quarter hour, an always-open channel.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest

from warehouse.calendar import build_calendar_tables, business_ms

BERLIN = "Europe/Berlin"
ORG_HOURS: dict[str, Any] = {d: [["09:00", "12:00"], ["12:05", "17:30"]] for d in ("mon", "tue", "wed", "thu", "fri")}
ORG_HOURS["holidays"] = ["2026-03-27"]
OVERRIDE: dict[str, Any] = {"sat": [["10:10", "10:20"], ["10:25", "23:59"]], "sun": [["00:00", "24:00"]]}
START, END = datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 3, tzinfo=UTC)  # DST on 2026-03-29
CLOCK_SQL = """
    select b.clock_ms + least(greatest(epoch_ms(t) - b.s1_ms, 0), b.l1_ms)
           + least(greatest(epoch_ms(t) - b.s2_ms, 0), b.l2_ms)
    from (select ?::timestamptz as t) x
    left join cal_business_buckets as b
        on b.channel_id = ? and b.bucket_at = make_timestamptz(epoch_us(x.t) // 900000000 * 900000000)
"""


def _tables(channels: list[list[Any]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    build_calendar_tables(con, {"orgs": [[1, BERLIN, ORG_HOURS]], "channels": channels}, START, END)
    return con


def _clock(con: duckdb.DuckDBPyConnection, channel: int, t: datetime) -> int:
    row = con.execute(CLOCK_SQL, [t, channel]).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def test_bucket_clock_equals_reference_business_time() -> None:
    con = _tables([[1, 1, None], [2, 1, OVERRIDE], [3, 1, {"holidays": []}]])
    rng = random.Random(7)
    edges = [datetime(2026, 3, 23, 8, 0, tzinfo=UTC), datetime(2026, 3, 23, 11, 0, tzinfo=UTC),
             datetime(2026, 3, 23, 11, 5, tzinfo=UTC), datetime(2026, 3, 28, 9, 12, tzinfo=UTC),
             datetime(2026, 3, 28, 9, 20, tzinfo=UTC), datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)]
    instants = edges + [START + timedelta(days=1, seconds=rng.randrange(11 * 86400)) for _ in range(120)]
    instants += [t + timedelta(milliseconds=rng.randrange(1000)) for t in instants[:40]]
    hours = {1: ORG_HOURS, 2: OVERRIDE, 3: {"holidays": []}}
    for channel in (1, 2, 3):
        for _ in range(150):
            a, b = sorted(rng.sample(instants, 2))
            expected = business_ms(a, b, hours[channel], BERLIN)
            assert _clock(con, channel, b) - _clock(con, channel, a) == expected, (channel, a, b)


def test_three_open_spans_in_one_quarter_hour_are_refused_clearly() -> None:
    hours = {"mon": [["09:00", "09:04"], ["09:06", "09:08"], ["09:10", "17:00"]]}
    with pytest.raises(ValueError, match="more than twice within the quarter hour"):
        _tables([[1, 1, hours]])
