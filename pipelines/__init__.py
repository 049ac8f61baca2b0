"""Prefect flows and the webhook receiver: thin wiring of connectors to the domain services."""

from __future__ import annotations
