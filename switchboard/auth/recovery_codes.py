"""One-time recovery codes: 10 random codes shown once, stored argon2-hashed, each usable once."""

from __future__ import annotations

import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, insert, select, update

from switchboard.db.schema import RecoveryCode
from switchboard.uow import UnitOfWork

COUNT = 10
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
# The codes carry 50 random bits, so a light argon2id cost is enough and keeps a check of ten codes fast.
_hasher = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)
_DUMMY = _hasher.hash("not-a-recovery-code")  # checked in place of codes a user does not have


def new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def normalize(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def replace_codes(uow: UnitOfWork, user_id: int, now: datetime) -> list[str]:
    """Delete the user's codes and store ten new ones (the caller commits). Returns them in clear."""
    uow.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [new_code() for _ in range(COUNT)]
    uow.session.execute(
        insert(RecoveryCode),
        [{"user_id": user_id, "code_hash": _hasher.hash(normalize(c)), "created_at": now} for c in codes],
    )
    return codes


def _first_match(candidates: list[tuple[int | None, str]], wanted: str) -> int | None:
    """Check ``wanted`` against COUNT hashes (padded with a dummy), without stopping at a match, so
    the time taken does not depend on how many codes are left or which one matched."""
    padded = candidates + [(None, _DUMMY)] * max(0, COUNT - len(candidates))
    found = None
    for code_id, code_hash in padded:
        try:
            _hasher.verify(code_hash, wanted)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            continue
        if found is None:
            found = code_id
    return found


def check_like_a_user(code: str) -> None:
    """Spend the time of checking ``code`` against a user's codes (for a refusal before the codes)."""
    _first_match([], normalize(code))


def use_code(uow: UnitOfWork, user_id: int, code: str, now: datetime) -> bool:
    """Mark a matching unused code as used (the caller commits). False when none matches."""
    rows = uow.session.execute(
        select(RecoveryCode.id, RecoveryCode.code_hash).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
        )
    ).all()
    code_id = _first_match([(r.id, r.code_hash) for r in rows], normalize(code))
    if code_id is None:
        return False
    marked = uow.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.id == code_id, RecoveryCode.used_at.is_(None))
        .values(used_at=now)
        .returning(RecoveryCode.id)
    ).first()
    return marked is not None


def remaining(uow: UnitOfWork, user_id: int) -> int:
    return int(uow.session.execute(
        select(func.count()).select_from(RecoveryCode).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
        )
    ).scalar_one())
