"""Watermarks with pending ids: rows committed out of id order are never missed, gaps are bounded."""

from __future__ import annotations

from warehouse.extract import OVERLAP_IDS, IdWindow


def test_ids_not_seen_below_the_new_watermark_become_pending() -> None:
    w = IdWindow(10).advance([11, 12, 15])
    assert w == IdWindow(15, (13, 14))


def test_pending_ids_seen_later_are_dropped_and_the_rest_kept() -> None:
    w = IdWindow(15, (13, 14)).advance([14, 16])
    assert w == IdWindow(16, (13,))


def test_nothing_new_keeps_the_window() -> None:
    assert IdWindow(15, (13,)).advance([]) == IdWindow(15, (13,))


def test_ids_named_below_the_watermark_do_not_move_it() -> None:
    assert IdWindow(15, (13,)).advance([3, 7]) == IdWindow(15, (13,))


def test_pending_ids_far_below_the_watermark_are_given_up() -> None:
    top = 20 + OVERLAP_IDS + 5
    w = IdWindow(20, (17,)).advance(list(range(21, top + 1)))
    assert w == IdWindow(top, ())


def test_a_big_jump_watches_only_the_last_overlap() -> None:
    w = IdWindow(0).advance([5 * OVERLAP_IDS])
    assert w.watermark == 5 * OVERLAP_IDS
    assert len(w.pending) == OVERLAP_IDS - 1 and min(w.pending) == 4 * OVERLAP_IDS + 1


def test_a_state_from_before_pending_ids_watches_the_whole_overlap() -> None:
    w = IdWindow.from_state({"watermarks": {"messages": 25_000}}, "messages")
    assert w.watermark == 25_000 and w.pending == tuple(range(25_000 - OVERLAP_IDS + 1, 25_001))
    assert IdWindow.from_state({}, "messages") == IdWindow(0)
    assert IdWindow.from_state({"id_windows": {"messages": {"watermark": 9, "pending": [4]}}},
                               "messages") == IdWindow(9, (4,))
