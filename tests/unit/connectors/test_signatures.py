"""Webhook signatures and the verification handshake (WhatsApp, Messenger, Instagram)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from connectors.base import ConnectorError, SignatureError
from connectors.registry import get_connector
from connectors.signatures import sign_body

SECRET = "app-secret"
BODY = b'{"object":"page","entry":[]}'


def _connector(provider: str) -> Any:
    creds = {"access_token": "t", "page_access_token": "t", "app_secret": SECRET, "verify_token": "vt",
             "phone_number_id": "1", "page_id": "2", "ig_user_id": "3"}
    return get_connector(provider, external_id=None, credentials=creds)


@pytest.mark.parametrize("provider", ["whatsapp", "sandbox", "messenger", "instagram"])
def test_good_signature_passes_case_insensitive_header(provider: str) -> None:
    with _connector(provider) as c:
        sig = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
        c.verify_signature(BODY, {"X-Hub-Signature-256": sig})
        c.verify_signature(BODY, {"x-hub-signature-256": sig.upper().replace("SHA256=", "sha256=")})


@pytest.mark.parametrize("provider", ["whatsapp", "messenger", "instagram"])
@pytest.mark.parametrize(("headers", "code"), [
    ({}, "missing_signature"),
    ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "bad_signature"),
    ({"X-Hub-Signature-256": "md5=abc"}, "malformed_signature"),
    ({"X-Hub-Signature-256": sign_body("other-secret", BODY)}, "bad_signature"),
])
def test_bad_or_missing_signature_is_refused(provider: str, headers: dict[str, str], code: str) -> None:
    with _connector(provider) as c, pytest.raises(SignatureError) as info:
        c.verify_signature(BODY, headers)
    assert info.value.code == code


def test_signature_covers_the_exact_bytes() -> None:
    with _connector("whatsapp") as c, pytest.raises(SignatureError):
        c.verify_signature(BODY + b" ", {"X-Hub-Signature-256": sign_body(SECRET, BODY)})


def test_sha1_fallback_only_for_messenger_and_instagram() -> None:
    sha1 = {"X-Hub-Signature": sign_body(SECRET, BODY, algorithm="sha1")}
    for provider in ("messenger", "instagram"):
        with _connector(provider) as c:
            c.verify_signature(BODY, sha1)
            with pytest.raises(SignatureError):
                c.verify_signature(BODY, {"X-Hub-Signature": sign_body("nope", BODY, algorithm="sha1")})
    with _connector("whatsapp") as c, pytest.raises(SignatureError) as info:
        c.verify_signature(BODY, sha1)
    assert info.value.code == "missing_signature"


def test_sha256_wins_over_a_valid_sha1() -> None:
    with _connector("messenger") as c, pytest.raises(SignatureError):
        c.verify_signature(BODY, {"X-Hub-Signature": sign_body(SECRET, BODY, algorithm="sha1"),
                                  "X-Hub-Signature-256": "sha256=" + "f" * 64})


@pytest.mark.parametrize("provider", ["whatsapp", "messenger", "instagram"])
def test_challenge(provider: str) -> None:
    with _connector(provider) as c:
        ok = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "12345"}
        assert c.verify_challenge(ok) == "12345"
        for bad, code in [({**ok, "hub.verify_token": "nope"}, "bad_verify_token"),
                          ({**ok, "hub.mode": "unsubscribe"}, "bad_mode"),
                          ({k: v for k, v in ok.items() if k != "hub.challenge"}, "missing_challenge")]:
            with pytest.raises(SignatureError) as info:
                c.verify_challenge(bad)
            assert info.value.code == code


def test_registry_errors_are_clear() -> None:
    with pytest.raises(ConnectorError, match="telegram"):
        get_connector("telegram", external_id=None, credentials={})
    with pytest.raises(ConnectorError, match="unknown provider"):
        get_connector("fax", external_id=None, credentials={})
    with pytest.raises(ConnectorError, match="app_secret"):
        get_connector("whatsapp", external_id="1", credentials={"access_token": "t"})
    with pytest.raises(ConnectorError, match="page_id"):
        get_connector("messenger", external_id=None, credentials={"page_access_token": "t", "app_secret": "s"})
    wa = get_connector("whatsapp", external_id="555", credentials={"access_token": "t", "app_secret": "s"})
    assert wa.provider == "whatsapp" and getattr(wa, "phone_number_id") == "555"  # noqa: B009
    wa.close()
