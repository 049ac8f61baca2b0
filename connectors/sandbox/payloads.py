"""Webhook bodies exactly as the WhatsApp Cloud API shapes them, and their signatures.

Used by the sandbox server; also handy for benchmarks and tests that need realistic signed bodies.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from connectors.signatures import sign_body

WABA_ID = "100000000000001"


def new_wamid() -> str:
    """An id shaped like WhatsApp's (``wamid.`` + opaque token)."""
    return "wamid.SBX" + secrets.token_urlsafe(24)


def _envelope(phone_number_id: str, display_phone_number: str, value: dict[str, Any]) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id},
        **value,
    }
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}]}


def inbound_message_body(
    *,
    phone_number_id: str,
    display_phone_number: str,
    from_phone: str,
    name: str | None,
    wamid: str,
    timestamp: int,
    text: str | None = None,
    image: dict[str, Any] | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """One inbound customer message (text, or image with ``{id, mime_type, sha256, caption}``)."""
    message: dict[str, Any] = {"from": from_phone, "id": wamid, "timestamp": str(timestamp)}
    if image is not None:
        message.update(type="image", image=image)
    else:
        message.update(type="text", text={"body": text or ""})
    if reply_to:
        message["context"] = {"from": display_phone_number, "id": reply_to}
    contact = {"profile": {"name": name or from_phone}, "wa_id": from_phone}
    return _envelope(phone_number_id, display_phone_number, {"contacts": [contact], "messages": [message]})


def status_body(
    *,
    phone_number_id: str,
    display_phone_number: str,
    wamid: str,
    status: str,
    recipient_id: str,
    timestamp: int,
    biz_opaque_callback_data: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One status update (``sent``/``delivered``/``read``/``failed``) for a message we were asked to send."""
    st: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(timestamp),
                          "recipient_id": recipient_id}
    if status in ("sent", "delivered"):
        st["conversation"] = {"id": "sbx-conv-" + recipient_id, "origin": {"type": "service"}}
        st["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    if biz_opaque_callback_data:
        st["biz_opaque_callback_data"] = biz_opaque_callback_data
    if error is not None:
        st["errors"] = [error]
    return _envelope(phone_number_id, display_phone_number, {"statuses": [st]})


def encode_signed(body: dict[str, Any], app_secret: str) -> tuple[bytes, dict[str, str]]:
    """Serialize a body and compute the headers Meta sends with it."""
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": sign_body(app_secret, raw)}
