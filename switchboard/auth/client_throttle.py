"""Sign-in throttling per client address, across accounts (issue 14).

The lockout in :mod:`switchboard.auth.login` counts failures per *submitted address*; a client that
sprays one password over a thousand addresses never trips it. This module counts failed password
steps per *client address* as well: ``settings.client_free_attempts`` failures within
:data:`CLIENT_WINDOW` cost nothing, each further one makes the client wait twice as long as the one
before (1 s, 2 s, 4 s … up to ``settings.client_max_wait_seconds``) before its next attempt is even
looked at. The counter lives in PostgreSQL (``client_signin_attempts``), so several app replicas share
it. The wait says nothing about any account: it reads the same whatever address was tried.

A success does not clear the client's counter (a sprayer who guessed one password must not get a
fresh budget); the counter is forgotten :data:`CLIENT_WINDOW` after the client's last failure.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from switchboard.db.schema import ClientSigninAttempt
from switchboard.settings import Settings
from switchboard.uow import UnitOfWork

CLIENT_WINDOW = timedelta(hours=1)
MAX_ADDRESS = 64  # IPv6 with a zone fits; anything longer is not an address we were given honestly


def normalise_client(address: str | None) -> str | None:
    """The key a client is counted under, or None when the address is unknown (then nothing is counted)."""
    value = (address or "").strip()
    return value[:MAX_ADDRESS] or None


def client_wait(uow: UnitOfWork, client: str | None, now: datetime) -> float:
    """Seconds the client must still wait before its next sign-in attempt is looked at (0: none)."""
    if client is None:
        return 0.0
    until = uow.session.execute(
        select(ClientSigninAttempt.blocked_until).where(ClientSigninAttempt.client_address == client)
    ).scalar()
    return max(0.0, (until - now).total_seconds()) if until is not None else 0.0


def wait_message(seconds: float) -> str:
    n, unit = (math.ceil(seconds), "second") if seconds < 120 else (math.ceil(seconds / 60), "minute")
    shown = f"{n} {unit}{'s' if n != 1 else ''}"
    return f"too many failed sign-ins from your network; try again in {shown}"


def count_client_failure(uow: UnitOfWork, client: str | None, now: datetime, settings: Settings) -> int:
    """Count one failed password step of the client (a new window after an hour without failures) and
    set its wait once past the free attempts. Returns the client's failures in the window."""
    if client is None:
        return 0
    uow.session.execute(delete(ClientSigninAttempt).where(
        ClientSigninAttempt.last_failed_at < now - CLIENT_WINDOW,
        (ClientSigninAttempt.blocked_until.is_(None)) | (ClientSigninAttempt.blocked_until <= now)))
    stale = ClientSigninAttempt.last_failed_at < now - CLIENT_WINDOW
    stmt = pg_insert(ClientSigninAttempt).values(client_address=client, failed_attempts=1, last_failed_at=now)
    failures = int(uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=[ClientSigninAttempt.client_address],
            set_={"failed_attempts": case((stale, 1), else_=ClientSigninAttempt.failed_attempts + 1),
                  "last_failed_at": now})
        .returning(ClientSigninAttempt.failed_attempts)
    ).scalar_one())
    over = failures - settings.client_free_attempts
    if over > 0:
        wait = min(2.0 ** min(over - 1, 30), float(settings.client_max_wait_seconds))
        uow.session.execute(update(ClientSigninAttempt).where(ClientSigninAttempt.client_address == client)
                            .values(blocked_until=now + timedelta(seconds=wait)))
    return failures
