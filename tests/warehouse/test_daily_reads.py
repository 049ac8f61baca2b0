"""The page's per-day reads come from the ``time_metric_daily`` mart and equal the row-level figures."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal
from sqlalchemy import Engine

from tests.warehouse.seed import T
from tests.warehouse.test_build import scenario
from warehouse import queries
from warehouse.build import build, load_models
from warehouse.metrics import TIME_METRICS_BY_NAME


def _built(engine: Engine, db_url: str, tmp_path: Path) -> tuple[Path, int, list[int]]:
    s = scenario(engine)
    noone = s.conversation(s.channel("fb", "messenger"), "e")  # a third channel, answered by no agent
    s.inbound(noone, "2026-03-03 10:00")
    s.reply(noone, "2026-03-03 10:07", None)  # an echo from the native app: no agent
    path = tmp_path / "w"
    build(db_url, path, full=True, now=T("2026-03-03 12:00"))
    org = int(queries.organizations(path)["organization_id"][0])
    return path, org, sorted(queries.channels(path, org)["channel_id"].to_list())


def test_per_day_statistics_from_the_mart_equal_those_from_the_rows(engine: Engine, db_url: str,
                                                                     tmp_path: Path) -> None:
    path, org, channels = _built(engine, db_url, tmp_path)
    compared = 0
    for start, end in ((T("2026-03-01").date(), T("2026-03-31").date()), (T("2026-03-03").date(),) * 2):
        for metric in TIME_METRICS_BY_NAME:
            for business in (False, True):
                for ch in (None, *([c] for c in channels)):
                    for agent in (None, "ann@x.io", "bob@x.io", "nobody@x.io"):
                        kw = {"group_by": "day", "business_hours": business, "channel_ids": ch, "agent": agent}
                        mart = queries.time_metric_stats(path, org, metric, start, end, **kw)  # type: ignore[arg-type]
                        rows = queries.time_metric_stats_from_rows(path, org, metric, start, end, **kw)  # type: ignore[arg-type]
                        assert_frame_equal(mart, rows)
                        compared += mart.height
    assert compared > 100


def test_unanswered_turns_per_day_and_channel_equal_those_counted_from_the_turns(engine: Engine, db_url: str,
                                                                                  tmp_path: Path) -> None:
    path, org, channels = _built(engine, db_url, tmp_path)
    start, end = T("2026-03-01").date(), T("2026-03-31").date()
    for group_by in (None, "day", "channel"):
        for ch in (None, channels[:1], channels[1:]):
            got = queries.response_times(path, org, start, end, group_by=group_by, channel_ids=ch)
            key = {"channel": "channel_name", "day": "turn_started_local_date", None: None}[group_by]
            sel, grp = (f"{key} as {group_by}, ", "group by all") if key else ("", "")
            flt = " and channel_id in (select unnest(?::bigint[]))" if ch else ""
            counted = queries.query(path, (
                f"select {sel}count(*) filter (where is_unanswered) as count_unanswered, "  # noqa: S608
                f"count(*) filter (where is_waiting) as count_waiting from response_times "
                f"where organization_id = ? and turn_started_local_date between ? and ?{flt} {grp}"
            ), [org, start, end, *([ch] if ch else [])])
            stats = queries.time_metric_stats_from_rows(path, org, "response", start, end, group_by=group_by,
                                                        channel_ids=ch)
            expected = (stats.join(counted, on=group_by, how="full", coalesce=True).sort(group_by) if key
                        else pl.concat([stats, counted], how="horizontal"))
            assert_frame_equal(got, expected)
    overall = queries.response_times(path, org, start, end)
    assert overall["count_unanswered"][0] == 1 and overall["count_waiting"][0] >= 1


def test_every_time_metric_of_the_catalogue_is_in_the_daily_mart() -> None:
    [model] = [m for m in load_models() if m.name == "time_metric_daily"]
    assert {c.args[0] for c in model.calls if c.name == "metric_values"} == set(TIME_METRICS_BY_NAME)


def test_several_metrics_read_in_one_scan_equal_each_metric_read_alone(
        engine: Engine, db_url: str, tmp_path: Path) -> None:
    """The headline and the agents tab read first response and response (one mart) in one scan."""
    path, org, channels = _built(engine, db_url, tmp_path)
    start, end = T("2026-03-01").date(), T("2026-03-31").date()
    names = list(TIME_METRICS_BY_NAME)
    compared = 0
    for group_by in (None, "agent", "channel"):
        for business in (False, True):
            for ch in (None, channels[:1], channels[1:]):
                for agent in (None, "ann@x.io", "nobody@x.io"):
                    kw = {"group_by": group_by, "business_hours": business, "channel_ids": ch, "agent": agent}
                    together = queries.time_metric_stats_many(path, org, names, start, end, **kw)  # type: ignore[arg-type]
                    assert list(together) == names
                    for metric in names:
                        alone = queries.time_metric_stats_from_rows(path, org, metric, start, end, **kw)  # type: ignore[arg-type]
                        assert_frame_equal(together[metric], alone)
                        compared += together[metric].height
    assert compared > 100
