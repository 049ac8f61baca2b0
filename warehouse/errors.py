"""The warehouse's errors."""

from __future__ import annotations


class BuildError(RuntimeError):
    """A build could not run (another build holds the lock, a model failed, bad input)."""


class WarehouseNotBuilt(RuntimeError):
    """The warehouse does not exist yet (run `switchboard warehouse build`)."""
