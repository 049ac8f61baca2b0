"""How the pages word things: neutralised customer text, day labels, details in words."""

from __future__ import annotations

from datetime import UTC, date, datetime

from app.text import day_label, in_words, plain, visible, when, zone


def test_plain_shows_hidden_characters_and_escapes_markdown() -> None:
    assert visible("invoice\u202etxt.exe") == "invoice⟦U+202E⟧txt.exe"
    assert plain("*bold*.pdf") == "\\*bold\\*\\.pdf"
    assert plain("[x](http://e.test) :smile:") == "\\[x\\]\\(http\\://e\\.test\\) \\:smile\\:"
    assert plain("a\u202eb") == "a⟦U\\+202E⟧b"  # the marker, its "+" escaped like any other
    assert plain(None) == ""


def test_day_labels() -> None:
    today = date(2026, 12, 2)
    assert day_label(today, today) == "Today"
    assert day_label(date(2026, 12, 1), today) == "Yesterday"
    assert day_label(date(2026, 11, 30), today) == "Mon 30 Nov"
    assert day_label(date(2025, 11, 30), today) == "Sun 30 Nov 2025"


def test_when_in_a_list() -> None:
    tz = zone("Asia/Kathmandu")  # +05:45
    today = date(2026, 12, 2)
    assert when(datetime(2026, 12, 2, 3, 0, tzinfo=UTC), tz, today) == "08:45"
    assert when(datetime(2026, 12, 1, 20, 0, tzinfo=UTC), tz, today) == "01:45"  # already the 2nd there
    assert when(datetime(2026, 12, 1, 3, 0, tzinfo=UTC), tz, today) == "Yesterday"
    assert when(None, tz, today) == ""


def test_zone_falls_back_to_utc() -> None:
    assert str(zone("Europe/Berlin")) == "Europe/Berlin"
    assert str(zone("Mars/Olympus")) == "UTC" and str(zone(None)) == "UTC"


def test_details_in_words() -> None:
    assert in_words({"claimed": 3, "sent": 3}) == "3 claimed, 3 sent"
    assert in_words({"max_concurrent": [5, 2]}, changes=True) == "max concurrent: 5 → 2"
    assert in_words({"auto_assign": [False, True], "timezone": ["UTC", "Asia/Kathmandu"]}, changes=True) == \
        "auto assign: no → yes, timezone: UTC → Asia/Kathmandu"
    assert in_words({"role": "agent", "emailed": False}) == "role: agent, emailed: no"
    assert in_words({"channel_id": 7, "credentials": ["app_secret", "token"]}) == \
        "channel id: 7, credentials: app_secret, token"
    assert in_words({"build": {"rows": 10}, "seconds": 1.5, "error": None}) == \
        "build: 10 rows, 1.5 seconds, error: none"
    assert in_words({}) == "" and in_words(None) == ""
