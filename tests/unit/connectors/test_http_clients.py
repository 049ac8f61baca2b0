"""The connectors' HTTP clients: made when first needed, all verifying with one TLS context."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from connectors.email import EmailConnector
from connectors.http import tls_context
from connectors.twilio import TwilioConnector
from connectors.whatsapp import WhatsAppConnector


def _whatsapp(**kw: object) -> WhatsAppConnector:
    return WhatsAppConnector(phone_number_id="100", access_token="token", app_secret="secret", **kw)  # type: ignore[arg-type]


def test_a_connector_that_only_checks_webhook_signatures_makes_no_http_client() -> None:
    """The receiver rebuilds its connectors every 30 s and only verifies signatures with them: no HTTP
    client (and no TLS set-up) is made until the platform is called."""
    body = b'{"object": "whatsapp_business_account", "entry": []}'
    signature = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    with _whatsapp() as conn:
        conn.verify_signature(body, {"x-hub-signature-256": signature})
        assert conn.graph._http is None
        made = conn.graph.http
        assert made is conn.graph.http  # made once, then kept
    assert made.is_closed  # closed with its connector
    with _whatsapp() as unused:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        unused.graph.http  # noqa: B018 (a closed connector makes no new client)


def test_a_client_given_to_a_connector_is_used_and_left_open() -> None:
    given = httpx.Client()
    with _whatsapp(http=given) as conn:
        assert conn.graph.http is given
    assert not given.is_closed
    given.close()


def test_every_connector_client_verifies_with_the_one_tls_context() -> None:
    def context(client: httpx.Client) -> object:
        return client._transport._pool._ssl_context  # type: ignore[attr-defined]

    with _whatsapp() as wa, TwilioConnector(account_sid="AC1", auth_token="t", from_number="+14155550100") as sms, \
            EmailConnector(from_address="help@example.com", postmark_server_token="p") as mail:
        assert context(wa.graph.http) is tls_context()
        assert context(sms.http) is tls_context()
        assert context(mail.http) is tls_context()
    assert tls_context().verify_mode.name == "CERT_REQUIRED"
