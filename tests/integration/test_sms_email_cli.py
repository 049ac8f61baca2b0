"""`switchboard channel add --provider twilio|email` as an operator runs it: the channel is stored with
its credentials (encrypted) and its connector is built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from connectors.email import EmailConnector
from connectors.twilio import TwilioConnector
from switchboard.services.channels import list_channels
from switchboard.settings import get_settings
from switchboard.uow import UnitOfWork
from switchboard.workflows.connector_cache import ConnectorCache
from tests.integration.test_cli import run


@pytest.mark.integration
def test_twilio_and_email_channels_are_added_from_the_cli(db_url: str, tmp_path: Path) -> None:
    r = run(db_url, tmp_path, "channel", "add", "--key", "sms", "--provider", "twilio",
            "--credential", "account_sid=AC123", "--credential", "auth_token=tw-secret",
            "--credential", "from_number=+14155550100")
    assert r.returncode == 0, r.stderr
    assert "https://hooks.example.test/webhooks/twilio/" in r.stdout
    r = run(db_url, tmp_path, "channel", "add", "--key", "mail", "--provider", "email",
            "--credential", "from_address=support@shop.test", "--credential", "smtp_host=smtp.shop.test",
            "--credential", "smtp_port=2525", "--credential", "inbound_token=tok")
    assert r.returncode == 0, r.stderr
    assert "https://hooks.example.test/webhooks/email/" in r.stdout
    assert "tw-secret" not in r.stdout

    engine = create_engine(db_url)
    with UnitOfWork(engine) as uow:
        channels = {c.key: c for c in list_channels(uow)}
    cache = ConnectorCache(engine, get_settings().secret_key_bytes(), public_base_url="https://hooks.example.test")
    try:
        _, sms = cache.get(channels["sms"].id)
        _, mail = cache.get(channels["mail"].id)
    finally:
        cache.close()
        engine.dispose()
    assert isinstance(sms, TwilioConnector) and sms.from_number == "+14155550100"
    assert sms.status_callback_url == channels["sms"].webhook_url("https://hooks.example.test")
    assert isinstance(mail, EmailConnector) and mail.smtp[:2] == ("smtp.shop.test", 2525)
