"""Pure helpers of the inbox services (no database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from switchboard.errors import InvalidInput
from switchboard.importer import _validate
from switchboard.services.contacts import merge_sightings
from switchboard.services.inbox_views import decode_cursor, encode_cursor
from switchboard.services.ingest import can_advance, preview_of
from switchboard.services.outbox import backoff_seconds
from switchboard.types import ContactRef

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("current", "new", "ok"), [
    ("PENDING", "SENT", True), ("SENT", "DELIVERED", True), ("SENT", "READ", True),
    ("DELIVERED", "READ", True), ("READ", "DELIVERED", False), ("DELIVERED", "SENT", False),
    ("READ", "READ", False), ("SENT", "FAILED", True), ("DELIVERED", "FAILED", True),
    ("READ", "FAILED", False), ("FAILED", "READ", False), ("FAILED", "FAILED", False),
])
def test_status_moves_forward_only(current: str, new: str, ok: bool) -> None:
    assert can_advance(current, new) is ok


def test_preview() -> None:
    assert preview_of("  hello\n\nworld ", "text") == "hello world"
    assert len(preview_of("x" * 500, "text")) == 200
    assert preview_of(None, "image") == "[image]"


def test_merge_sightings_keeps_latest_profile_and_widest_times() -> None:
    got = merge_sightings([
        (ContactRef("c", display_name="Old", phone="+1"), T + timedelta(minutes=5)),
        (ContactRef("c", display_name="New"), T + timedelta(minutes=9)),
        (ContactRef("c"), T),
    ])["c"]
    assert (got.ref.display_name, got.ref.phone, got.first_at, got.last_at) == (
        "New", "+1", T, T + timedelta(minutes=9))


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(T, 42)) == (T, 42)
    for bad in ("", "???", encode_cursor(T, 1)[:-3]):
        with pytest.raises(InvalidInput):
            decode_cursor(bad)


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    assert 4 <= backoff_seconds(2) <= 5
    assert 64 <= backoff_seconds(6) <= 80
    assert backoff_seconds(50) <= 900 * 1.25
    assert backoff_seconds(3, retry_after=30) == 30


def test_validation_reports_every_bad_line() -> None:
    lines = [json.dumps({"type": "channel", "key": "wa", "provider": "whatsapp"}),
             json.dumps({"type": "organization", "name": "X"}),
             json.dumps({"type": "channel", "key": "Bad Key", "provider": "fax"}),
             json.dumps({"type": "status", "at": "2026-03-02T09:00:00Z", "message_id": "nope", "status": "seen"})]
    with pytest.raises(InvalidInput) as e:
        _validate(lines)
    msg = str(e.value)
    for expected in ("line 1: declare the organization first",
                     "line 3: channel key 'Bad Key'", "line 3: provider must be one of",
                     "line 4: status of unknown message 'nope'", "line 4: status must be one of"):
        assert expected in msg
