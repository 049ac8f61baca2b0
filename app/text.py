"""How the pages show text: customer-supplied text neutralised, dates in the organization's timezone,
summaries in words.

* :func:`visible` (from ``switchboard.domain.text``): invisible and bidirectional control characters
  replaced by markers (``⟦U+202E⟧``). For places that show text as it is: ``st.text``, table cells,
  select box options.
* :func:`plain`: :func:`visible` and Markdown escaped, for places that render Markdown: captions,
  ``st.markdown``, button and download-button labels. A customer's ``*bold*.pdf`` shows as typed.
* :func:`zone`, :func:`day_label`, :func:`when`: "Today", "Yesterday", "Mon 30 Nov", "14:05" in the
  organization's timezone.
* :func:`in_words`: a details mapping (``{"claimed": 3, "sent": 3}``) as words ("3 claimed, 3 sent").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from switchboard.domain.text import visible

__all__ = ["day_label", "in_words", "plain", "visible", "when", "zone"]

_MARKDOWN = "\\`*_{}[]<>()#+-.!|~$:"


def plain(text: str | None) -> str:
    """``text`` safe in Markdown: hidden characters shown as markers, every Markdown character escaped."""
    out = visible(text)
    for ch in _MARKDOWN:
        out = out.replace(ch, "\\" + ch)
    return out


def zone(name: str | None) -> tzinfo:
    """The timezone called ``name``; UTC for an empty or unknown name (a page never fails on it)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def day_label(day: date, today: date) -> str:
    """"Today", "Yesterday", "Mon 30 Nov" (with the year when it is not this year's)."""
    if day == today:
        return "Today"
    if (today - day).days == 1:
        return "Yesterday"
    return f"{day:%a} {day.day} {day:%b}" + ("" if day.year == today.year else f" {day.year}")


def when(ts: datetime | None, tz: tzinfo, today: date) -> str:
    """A moment in a list: the time for today's ("14:05"), the day for older ones ("Yesterday", "Mon 30 Nov")."""
    if ts is None:
        return ""
    at = ts.astimezone(tz)
    return f"{at:%H:%M}" if at.date() == today else day_label(at.date(), today)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "none"
    if isinstance(v, list | tuple):
        return ", ".join(_value(x) for x in v) or "none"
    if isinstance(v, Mapping):
        return in_words(v)
    return str(v)


def in_words(details: Mapping[str, Any] | None, *, changes: bool = False) -> str:
    """A details mapping as words: counts as "3 claimed, 3 sent", the rest as "role: agent". With
    ``changes``, each value is a ``[before, after]`` pair: "max concurrent: 5 → 3"."""
    if not details:
        return ""
    parts = []
    for key, v in details.items():
        words = str(key).replace("_", " ")
        if changes and isinstance(v, list | tuple) and len(v) == 2:
            parts.append(f"{words}: {_value(v[0])} → {_value(v[1])}")
        elif isinstance(v, int | float) and not isinstance(v, bool) and not words.endswith("id"):
            parts.append(f"{v:g} {words}" if isinstance(v, float) else f"{v} {words}")
        else:
            parts.append(f"{words}: {_value(v)}")
    return ", ".join(parts)
