"""AES-256-GCM for secrets at rest (TOTP secrets, channel credentials).

Ciphertext layout: ``b"v1" + key_id(8 bytes) + nonce(12) + ciphertext+tag``. The key id is the first
8 bytes of SHA-256 of the key, so `switchboard secret rotate` can re-encrypt everything written with an
old key and tell which key a value needs.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from switchboard.errors import SwitchboardError

VERSION = b"v1"


class DecryptionError(SwitchboardError):
    """The value was not encrypted with this key, or it was tampered with."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:8]


def encrypt(key: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    if len(key) != 32:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    nonce = os.urandom(12)
    return VERSION + key_id(key) + nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data or None)


def decrypt(key: bytes, blob: bytes, associated_data: bytes = b"") -> bytes:
    if len(blob) < 2 + 8 + 12 + 16 or blob[:2] != VERSION:
        raise DecryptionError("not a Switchboard v1 ciphertext")
    if blob[2:10] != key_id(key):
        raise DecryptionError("encrypted with a different SWITCHBOARD_SECRET_KEY (rotate keys with "
                              "`switchboard secret rotate`)")
    try:
        return AESGCM(key).decrypt(blob[10:22], blob[22:], associated_data or None)
    except InvalidTag as exc:
        raise DecryptionError("ciphertext failed authentication") from exc


def encrypt_json(key: bytes, value: dict[str, Any], associated_data: bytes = b"") -> bytes:
    return encrypt(key, json.dumps(value, separators=(",", ":")).encode(), associated_data)


def decrypt_json(key: bytes, blob: bytes, associated_data: bytes = b"") -> dict[str, Any]:
    data = json.loads(decrypt(key, blob, associated_data))
    if not isinstance(data, dict):
        raise DecryptionError("decrypted value is not a JSON object")
    return data
