"""Platform connectors: verify and parse webhooks, pull history, send. They never touch the database."""

from __future__ import annotations
