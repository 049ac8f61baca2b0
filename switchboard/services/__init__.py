"""Domain services: plain functions taking simple values and a unit of work."""

from __future__ import annotations
