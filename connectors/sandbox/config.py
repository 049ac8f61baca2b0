"""Configuration of the sandbox platform."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.sandbox.templates import DEFAULT_TEMPLATES


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How the sandbox WhatsApp platform behaves.

    ``speed`` divides every delay (status updates, customers typing, reading, coming back): 1.0 is
    realistic timing for the demo, 100+ makes tests fast. ``seed`` makes the simulated customers'
    names, phones, texts and timing choices reproducible.

    Like the platform, by default it refuses free text outside the 24 h window (131047) and template
    sends with an unknown or unapproved template (132001) or wrong parameter counts (132000);
    ``enforce_window`` / ``enforce_templates`` turn that off. ``waba_id`` is the business account whose
    ``message_templates`` list ``templates``. ``known_customers`` (phone → Unix time of the customer's last
    message) tells a fresh sandbox about customers who wrote before it started (the demo's history).

    SMS: with ``sms_auth_token`` set, the sandbox also serves the Twilio Messages API under ``/twilio``
    (account ``sms_account_sid``, number ``sms_from_number``) and runs ``sms_customers`` simulated SMS
    customers who write to ``sms_webhook_url`` (the ``twilio`` channel's webhook URL). ``base_url`` is the
    sandbox's own address (MMS media URLs point there; without it customers' photos go as text).
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
    enforce_window: bool = True  # reject free-form messages outside the 24 h window (131047)
    enforce_templates: bool = True  # reject unknown/unapproved templates (132001), wrong parameters (132000)
    waba_id: str = "sandbox-waba"
    templates: tuple[Mapping[str, Any], ...] = DEFAULT_TEMPLATES
    known_customers: Mapping[str, float] = field(default_factory=dict)
    undeliverable_prefix: str = "999"  # recipients starting with this get a `failed` 131026 status
    come_back_probability: float = 0.35
    webhook_max_attempts: int = 8
    send_statuses: bool = True  # post sent/delivered/read webhooks for each send (benchmarks turn it off)
    sms_auth_token: str = ""  # empty: no SMS
    sms_account_sid: str = "AC" + "0" * 32
    sms_from_number: str = "+14155550100"
    sms_webhook_url: str = ""
    sms_customers: int = 0
    base_url: str = ""

    def __post_init__(self) -> None:
        if not self.phone_number_id:
            raise ValueError("sandbox phone_number_id must not be empty")
        if not self.access_token:
            raise ValueError("sandbox access_token must not be empty")
        if not self.waba_id:
            raise ValueError("sandbox waba_id must not be empty")
        if not self.app_secret:
            raise ValueError("sandbox app_secret must not be empty (webhooks are signed with it)")
        if self.speed <= 0:
            raise ValueError(f"sandbox speed must be > 0, got {self.speed}")
        if self.customers < 0:
            raise ValueError(f"sandbox customers must be >= 0, got {self.customers}")
        if self.customers and not self.webhook_url:
            raise ValueError("simulated customers need a webhook_url to write to")
        if self.sms_customers < 0:
            raise ValueError(f"sandbox sms_customers must be >= 0, got {self.sms_customers}")
        if self.sms_customers and not (self.sms_auth_token and self.sms_webhook_url):
            raise ValueError("simulated SMS customers need sms_auth_token and an sms_webhook_url to write to")
