"""Rotate SWITCHBOARD_SECRET_KEY: re-encrypt every secret at rest from the old key to the new key.

Covers ``users.totp_secret_enc`` (associated data ``totp:{user id}``), ``channels.credentials_enc``
(``channel:{channel id}``) and ``event_subscriptions.secret_enc`` (``event-webhook:{id}``). Runs in one transaction with the rows locked, so it is all-or-nothing;
values already under the new key are skipped, so running it again is harmless. Procedure: see
docs/security.md.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select, update

from switchboard.crypto import DecryptionError, decrypt, encrypt, key_id
from switchboard.db.schema import Channel, EventSubscription, User
from switchboard.errors import InvalidInput
from switchboard.uow import UnitOfWork


def decode_key(text: str, what: str = "the old key") -> bytes:
    """A key as `switchboard secret-key` prints it (URL-safe base64 of 32 bytes, padding optional);
    InvalidInput, never a traceback, for anything else."""
    try:
        key = base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))
    except ValueError:
        raise InvalidInput(f"{what} is not URL-safe base64 (as `switchboard secret-key` prints it)") from None
    if len(key) != 32:
        raise InvalidInput(f"{what} must be 32 bytes (URL-safe base64 of 32 random bytes), not {len(key)}")
    return key


def _rotate_column(uow: UnitOfWork, table: Any, column: Any, aad: Callable[[int], bytes], what: str,
                   old_key: bytes, new_key: bytes) -> int:
    new_id = key_id(new_key)
    rows = uow.session.execute(
        select(table.id, column).where(column.is_not(None)).order_by(table.id).with_for_update()
    ).all()
    changed = 0
    for row_id, blob in rows:
        blob = bytes(blob)
        if blob[2:10] == new_id:
            continue
        try:
            plain = decrypt(old_key, blob, aad(row_id))
        except DecryptionError as exc:
            raise DecryptionError(f"{what} {row_id}: {exc}; nothing was changed") from None
        uow.session.execute(update(table).where(table.id == row_id)
                            .values({column.key: encrypt(new_key, plain, aad(row_id))}))
        changed += 1
    return changed


def rotate_secret_key(engine: Engine, old_key: bytes, new_key: bytes) -> int:
    """Re-encrypt all secrets from ``old_key`` to ``new_key``; returns how many values were rewritten.

    Raises DecryptionError (naming the row) if a value is under neither key; then nothing changes.
    """
    if len(old_key) != 32 or len(new_key) != 32:
        raise InvalidInput("both keys must be 32 bytes (URL-safe base64 of 32 random bytes)")
    if old_key == new_key:
        raise InvalidInput("the old and the new key are the same")
    with UnitOfWork(engine) as uow:
        count = _rotate_column(uow, User, User.totp_secret_enc, lambda i: f"totp:{i}".encode(),
                               "user", old_key, new_key)
        count += _rotate_column(uow, Channel, Channel.credentials_enc, lambda i: f"channel:{i}".encode(),
                                "channel", old_key, new_key)
        count += _rotate_column(uow, EventSubscription, EventSubscription.secret_enc,
                                lambda i: f"event-webhook:{i}".encode(), "event webhook", old_key, new_key)
        uow.commit()
    return count
