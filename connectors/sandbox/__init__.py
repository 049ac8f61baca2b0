"""The sandbox platform: a local WhatsApp Cloud API with simulated customers (demo + e2e tests)."""

from __future__ import annotations

from connectors.sandbox.app import SandboxPlatform, create_app, run_sandbox
from connectors.sandbox.config import SandboxConfig

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8787"

__all__ = ["DEFAULT_SANDBOX_URL", "SandboxConfig", "SandboxPlatform", "create_app", "run_sandbox"]
