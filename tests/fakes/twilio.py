"""The tests' Twilio: the sandbox's (:mod:`connectors.sandbox.twilio`), served alone with ``run_asgi``."""

from __future__ import annotations

from connectors.sandbox.twilio import Forced, SandboxTwilio, sign

FakeTwilio = SandboxTwilio

__all__ = ["FakeTwilio", "Forced", "sign"]
