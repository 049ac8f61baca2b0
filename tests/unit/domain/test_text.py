from __future__ import annotations

import sys
import unicodedata

from switchboard.domain.text import BIDI_CONTROLS, has_hidden_characters, marker, visible


def test_a_right_to_left_override_cannot_disguise_a_file_name() -> None:
    disguised = "invoice\u202etxt.exe"
    assert visible(disguised) == "invoice⟦U+202E⟧txt.exe"
    assert has_hidden_characters(disguised)


def test_every_bidi_control_and_zero_width_character_is_shown() -> None:
    for ch in [*BIDI_CONTROLS, "\u200b", "\u200c", "\u2060", "\ufeff", "\u00ad", "\u0000", "\u001b", "\u0085"]:
        assert visible(f"a{ch}b") == f"a{marker(ch)}b", hex(ord(ch))


def test_every_format_character_but_the_kept_ones_is_shown() -> None:
    kept = {"\u200d"}  # ZWJ inside emoji sequences
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        if unicodedata.category(ch) == "Cf" and ch not in kept:
            assert visible(ch) == marker(ch), hex(cp)


def test_ordinary_text_emoji_and_line_breaks_are_unchanged() -> None:
    for text in ["Hello, Zoë!\nSecond line\tand a tab", "👩‍💻 ✈️", "مرحبا بالعالم", "שלום", "日本語", ""]:
        assert visible(text) == text
        assert not has_hidden_characters(text)
    assert visible(None) == ""
