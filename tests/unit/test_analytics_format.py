"""The analytics page's formatting: durations that fit a tile, build age, a stale-build warning."""

from __future__ import annotations

from datetime import UTC, datetime

from app.views.analytics import built_caption, duration, staleness

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_durations_fit_a_metric_tile() -> None:
    assert duration(42_000) == "42 s"
    assert duration(68.8 * 60_000) == "68.8 min"
    assert duration(244.8 * 60_000) == "4.1 h"
    assert duration(3.2 * 86_400_000) == "3.2 d"


def test_build_time_is_shown_with_its_age() -> None:
    assert built_caption("2026-11-22T11:57:00+00:00", NOW).startswith(
        "Warehouse built 2026-11-22 11:57 UTC (3 min ago)")
    assert built_caption(None, NOW) == "Warehouse build time unknown."


def test_a_build_much_older_than_its_schedule_is_flagged() -> None:
    assert staleness("2026-11-22T11:50:00+00:00", NOW, 300) is None
    warning = staleness("2026-11-22T09:00:00+00:00", NOW, 300)
    assert warning is not None and "3.0 h ago" in warning and "worker" in warning
    assert staleness(None, NOW, 300) is None
