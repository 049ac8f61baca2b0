"""Configuration of the sandbox platform."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How the sandbox WhatsApp platform behaves.

    ``speed`` divides every delay (status updates, customers typing, reading, coming back): 1.0 is
    realistic timing for the demo, 100+ makes tests fast. ``seed`` makes the simulated customers'
    names, phones, texts and timing choices reproducible.
    """

    phone_number_id: str
    access_token: str
    app_secret: str
    webhook_url: str
    customers: int = 0
    speed: float = 1.0
    seed: int | None = None
    display_phone_number: str = "15550000000"
    api_version: str | None = None  # None accepts any "vNN.N" path prefix
    enforce_window: bool = False  # reject free-form messages outside the 24 h window (131047)
    undeliverable_prefix: str = "999"  # recipients starting with this get a `failed` 131026 status
    come_back_probability: float = 0.35
    webhook_max_attempts: int = 8
    send_statuses: bool = True  # post sent/delivered/read webhooks for each send (benchmarks turn it off)

    def __post_init__(self) -> None:
        if not self.phone_number_id:
            raise ValueError("sandbox phone_number_id must not be empty")
        if not self.access_token:
            raise ValueError("sandbox access_token must not be empty")
        if not self.app_secret:
            raise ValueError("sandbox app_secret must not be empty (webhooks are signed with it)")
        if self.speed <= 0:
            raise ValueError(f"sandbox speed must be > 0, got {self.speed}")
        if self.customers < 0:
            raise ValueError(f"sandbox customers must be >= 0, got {self.customers}")
        if self.customers and not self.webhook_url:
            raise ValueError("simulated customers need a webhook_url to write to")
