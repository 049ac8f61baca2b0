"""Switchboard: the shared domain package (schema, settings, services, auth, crypto)."""

from __future__ import annotations

__version__ = "0.1.0"
