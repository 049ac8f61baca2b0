"""The ``switchboard`` command line and the demo launcher."""

from __future__ import annotations

from switchboard.cli.main import main

__all__ = ["main"]
