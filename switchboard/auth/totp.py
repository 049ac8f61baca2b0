"""TOTP (RFC 6238) helpers on pyotp: step matching with a window, replay guard, QR codes with segno."""

from __future__ import annotations

import hmac
import io
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno

from switchboard.crypto import decrypt, encrypt
from switchboard.errors import InvalidInput

ISSUER = "Switchboard"
STEP_SECONDS = 30
VALID_WINDOW = 1  # one 30 s step either side of the server clock


def totp_aad(user_id: int) -> bytes:
    """Associated data binding an encrypted TOTP secret to its user row."""
    return f"totp:{user_id}".encode()


def encrypt_secret(secret_key: bytes, user_id: int, secret: str) -> bytes:
    return encrypt(secret_key, secret.encode(), totp_aad(user_id))


def decrypt_secret(secret_key: bytes, user_id: int, blob: bytes) -> str:
    return decrypt(secret_key, blob, totp_aad(user_id)).decode()


def new_secret() -> str:
    return pyotp.random_base32()  # 32 base32 chars = 160 bits


def step_of(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def normalize_code(code: str) -> str:
    """Strip spaces; raise InvalidInput unless it is six digits."""
    cleaned = "".join(code.split())
    if len(cleaned) != 6 or not cleaned.isdigit():
        raise InvalidInput("enter the 6-digit code from your authenticator app")
    return cleaned


def matching_step(secret: str, code: str, now: datetime, window: int = VALID_WINDOW) -> int | None:
    """The time step (newest first within ±window) whose code equals ``code``, else None."""
    totp = pyotp.TOTP(secret)
    current = step_of(now)
    for step in range(current + window, current - window - 1, -1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def code_at(secret: str, when: datetime) -> str:
    """The code an authenticator shows at ``when`` (tests and tooling)."""
    return pyotp.TOTP(secret).generate_otp(step_of(when))


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def manual_key(secret: str) -> str:
    """The secret in groups of four for typing into an app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@dataclass(frozen=True, slots=True)
class QRCode:
    svg: str
    png: bytes


def qr_code(uri: str) -> QRCode:
    qr = segno.make(uri, error="m")
    png = io.BytesIO()
    qr.save(png, kind="png", scale=6, border=2)
    svg = io.BytesIO()
    qr.save(svg, kind="svg", scale=6, border=2, xmldecl=False)
    return QRCode(svg.getvalue().decode(), png.getvalue())
