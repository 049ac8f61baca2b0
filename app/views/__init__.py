"""The app's pages (one module each, listed in app/main.py PAGES) and their small shared helpers."""

from __future__ import annotations

from datetime import datetime


def minute(at: datetime | None) -> str:
    """``2026-12-02 13:05`` (empty for no time): how the admin tables show a moment."""
    return at.strftime("%Y-%m-%d %H:%M") if at else ""
