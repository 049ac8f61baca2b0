"""Webhook security: Meta's (WhatsApp Cloud API, Messenger, Instagram) ``X-Hub-Signature-256`` HMAC
over the raw body and ``hub.challenge`` handshake; decoding and checking a body (JSON, or form-encoded
for Twilio); the public URL the receiver says a delivery was sent to."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qs

import orjson

from connectors.base import WEBHOOK_URL_HEADER, PayloadError, SignatureError

BodyFormat = Literal["json", "form"]


def sign_body(app_secret: str, raw_body: bytes, *, algorithm: str = "sha256") -> str:
    """The header value Meta sends: ``sha256=<hex HMAC(app_secret, raw_body)>``."""
    digest = hmac.new(app_secret.encode(), raw_body, getattr(hashlib, algorithm)).hexdigest()
    return f"{algorithm}={digest}"


def header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_meta_signature(raw_body: bytes, headers: Mapping[str, str], app_secret: str, *,
                          allow_sha1: bool = False) -> None:
    """Check ``X-Hub-Signature-256`` (or, when allowed, the legacy sha1 ``X-Hub-Signature``).

    Constant-time comparison over the raw bytes; raises :class:`SignatureError` with a reason.
    """
    if not app_secret:
        raise SignatureError("channel has no app_secret configured; cannot verify webhook signatures",
                             code="no_secret")
    candidates: list[tuple[str, str]] = []
    sig256 = header(headers, "X-Hub-Signature-256")
    if sig256:
        candidates.append(("sha256", sig256))
    elif allow_sha1:
        sig1 = header(headers, "X-Hub-Signature")
        if sig1:
            candidates.append(("sha1", sig1))
    if not candidates:
        expected = "X-Hub-Signature-256" + (" or X-Hub-Signature" if allow_sha1 else "")
        raise SignatureError(f"missing {expected} header", code="missing_signature")
    algorithm, value = candidates[0]
    prefix = f"{algorithm}="
    if not value.startswith(prefix):
        raise SignatureError(f"malformed signature header: expected '{prefix}<hex>'",
                             code="malformed_signature")
    expected_value = sign_body(app_secret, raw_body, algorithm=algorithm)
    if not hmac.compare_digest(expected_value.encode(), value.strip().lower().encode()):
        raise SignatureError("signature does not match the body", code="bad_signature")


def verify_meta_challenge(params: Mapping[str, str], verify_token: str) -> str:
    """The GET handshake: ``hub.mode=subscribe`` and our verify token -> echo ``hub.challenge``."""
    mode = params.get("hub.mode")
    token = params.get("hub.verify_token") or ""
    challenge = params.get("hub.challenge")
    if mode != "subscribe":
        raise SignatureError(f"hub.mode must be 'subscribe', got {mode!r}", code="bad_mode")
    if not verify_token or not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise SignatureError("hub.verify_token does not match this channel's verify token",
                             code="bad_verify_token")
    if not challenge:
        raise SignatureError("hub.challenge is missing", code="missing_challenge")
    return challenge


def load_json_object(raw_body: bytes) -> dict[str, Any]:
    """Decode a webhook body; anything but a JSON object is a :class:`PayloadError`."""
    try:
        data = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise PayloadError(f"body must be a JSON object, got {type(data).__name__}", code="not_object")
    return data


def load_form(raw_body: bytes) -> dict[str, list[str]]:
    """Decode an ``application/x-www-form-urlencoded`` body (Twilio); every value as a list."""
    try:
        return parse_qs(raw_body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"body is not form-encoded: {exc}", code="invalid_form") from None


def _check_json(raw_body: bytes) -> None:
    """Raise ValueError unless ``raw_body`` is JSON. orjson (strict RFC 8259) answers the common case
    at a fraction of ``json.loads``' cost; only what it refuses goes to ``json.loads``, which decides
    (and words the error), so what is accepted is exactly what ``json.loads`` accepts."""
    try:
        orjson.loads(raw_body)
    except orjson.JSONDecodeError:
        json.loads(raw_body)


def body_error(body_format: BodyFormat, raw_body: bytes) -> str | None:
    """Why a webhook body is not well-formed for its provider's format (None when it is): the receiver
    refuses such a body with 400 before storing it as RECEIVED."""
    try:
        if body_format == "form":
            load_form(raw_body)
        else:
            _check_json(raw_body)
    except PayloadError as exc:
        return f"malformed form body: {exc.message}"
    except (UnicodeDecodeError, ValueError) as exc:
        return f"malformed JSON: {exc}"
    return None


def webhook_url(headers: Mapping[str, str]) -> str:
    """The public URL the delivery was sent to, as the receiver passed it (:data:`WEBHOOK_URL_HEADER`)."""
    url = header(headers, WEBHOOK_URL_HEADER)
    if not url:
        raise SignatureError("the receiver did not pass the public webhook URL; cannot verify",
                             code="no_webhook_url")
    return url
