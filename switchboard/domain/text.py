"""Customer-supplied text made safe to *show* (issue 14): invisible and bidirectional control characters.

A right-to-left override (U+202E) makes ``invoice\u202etxt.exe`` look like ``invoiceexe.txt``; zero-width
characters make two different names look identical. Everything people outside the organization typed
(contact names, message texts, file names, captions) is passed through :func:`visible` before it is
shown: each such character is replaced by a visible marker naming it (``⟦U+202E⟧``), so nothing is
hidden and nothing is lost. The stored text is never changed (search, export and the API keep it).

Ordinary formatting that people need stays: line breaks and tabs, the zero-width joiner inside emoji
sequences (👩‍💻) and variation selectors (category Mn, not touched).
"""

from __future__ import annotations

import unicodedata

# explicit bidi embeddings/overrides/isolates and marks, which can reorder what is displayed
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_KEEP = frozenset("\n\t\u200d")  # line break, tab, the zero-width joiner of emoji sequences (👩‍💻)
# blank "letters" that render as nothing (Hangul fillers, the combining grapheme joiner, Khmer inherent vowels)
_BLANK = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")


def _hidden(ch: str) -> bool:
    """Control (Cc), format (Cf: zero-width, bidi, soft hyphen, tags…) or a blank filler letter."""
    if ch in _KEEP:
        return False
    return ch in _BLANK or unicodedata.category(ch) in ("Cc", "Cf")


def marker(ch: str) -> str:
    return f"⟦U+{ord(ch):04X}⟧"


def visible(text: str | None) -> str:
    """``text`` with every invisible or direction-changing character replaced by a visible marker."""
    if not text:
        return text or ""
    if text.isascii() and text.isprintable():  # the common case, without a look at each character
        return text
    return "".join(marker(ch) if _hidden(ch) else ch for ch in text)


def has_hidden_characters(text: str | None) -> bool:
    """True when :func:`visible` would change ``text`` (e.g. to warn next to a file name)."""
    return bool(text) and visible(text) != text
