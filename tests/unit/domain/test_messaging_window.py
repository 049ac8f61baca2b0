"""The messaging window rule, per platform, at its edges (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from switchboard.domain.messaging_window import (
    HUMAN_AGENT_TAG,
    WindowState,
    describe_duration,
    messaging_window,
    require_free_text,
)
from switchboard.errors import InvalidInput

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


@pytest.mark.parametrize("provider", ["whatsapp", "sandbox"])
def test_whatsapp_free_text_inside_24_hours_then_templates_only(provider: str) -> None:
    inside = messaging_window(provider, ago(hours=18, minutes=48), NOW)
    assert inside.state is WindowState.OPEN and inside.free_text_allowed and inside.templates_allowed
    assert inside.remaining == timedelta(hours=5, minutes=12) and inside.closes_at == NOW + inside.remaining
    assert "5 h 12 min left" in inside.reason and inside.tag is None
    require_free_text(inside)
    edge = messaging_window(provider, ago(hours=24), NOW)
    assert edge.state is WindowState.TEMPLATE_REQUIRED and not edge.free_text_allowed
    late = messaging_window(provider, ago(days=2, hours=3), NOW)
    assert late.state is WindowState.TEMPLATE_REQUIRED and late.closes_at is None
    assert "last wrote 2 d 3 h ago" in late.reason and "approved template" in late.reason
    with pytest.raises(InvalidInput, match="approved template"):
        require_free_text(late)
    never = messaging_window(provider, None, NOW)
    assert never.state is WindowState.TEMPLATE_REQUIRED and "has not written" in never.reason


@pytest.mark.parametrize("provider", ["messenger", "instagram"])
def test_meta_24_hours_then_human_agent_tag_up_to_7_days_then_refused(provider: str) -> None:
    inside = messaging_window(provider, ago(hours=1), NOW)
    assert inside.state is WindowState.OPEN and inside.tag is None and not inside.templates_allowed
    tagged = messaging_window(provider, ago(days=2), NOW)
    assert tagged.state is WindowState.HUMAN_AGENT and tagged.tag == HUMAN_AGENT_TAG
    assert tagged.free_text_allowed and tagged.remaining == timedelta(days=5)
    assert "HUMAN_AGENT" in tagged.reason and "5 d left" in tagged.reason
    require_free_text(tagged)
    just_before = messaging_window(provider, ago(days=7) + timedelta(seconds=1), NOW)
    assert just_before.state is WindowState.HUMAN_AGENT
    closed = messaging_window(provider, ago(days=7), NOW)
    assert closed.state is WindowState.CLOSED and not closed.free_text_allowed and closed.tag is None
    assert "within 7 days" in closed.reason
    with pytest.raises(InvalidInput, match="write again"):
        require_free_text(closed)
    assert messaging_window(provider, None, NOW).state is WindowState.CLOSED
    bot = messaging_window(provider, ago(days=2), NOW, human=False)
    assert bot.state is WindowState.CLOSED and bot.tag is None and "written by a person" in bot.reason
    assert messaging_window(provider, ago(hours=2), NOW, human=False).state is WindowState.OPEN


@pytest.mark.parametrize("last", [None, ago(days=400)])
def test_telegram_and_unknown_platforms_have_no_window(last: datetime | None) -> None:
    for provider in ("telegram", "somethingnew"):
        w = messaging_window(provider, last, NOW)
        assert w.state is WindowState.NO_WINDOW and w.free_text_allowed and w.remaining is None
        assert "no messaging window" in w.reason


def test_a_clock_behind_the_last_message_counts_as_just_now() -> None:
    w = messaging_window("whatsapp", NOW + timedelta(minutes=5), NOW)
    assert w.state is WindowState.OPEN and w.remaining is not None and w.remaining > timedelta(hours=24)


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(seconds=59), "less than a minute"), (timedelta(minutes=7), "7 min"), (timedelta(hours=3), "3 h"),
    (timedelta(hours=3, minutes=4), "3 h 4 min"), (timedelta(days=1), "1 d"), (timedelta(days=6, hours=23), "6 d 23 h"),
])
def test_durations_read_like_a_person_says_them(delta: timedelta, text: str) -> None:
    assert describe_duration(delta) == text
