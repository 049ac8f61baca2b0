"""Secret-key rotation re-encrypts TOTP secrets and channel credentials; logins keep working."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from switchboard.auth.login import login
from switchboard.auth.totp import code_at
from switchboard.crypto import DecryptionError
from switchboard.errors import InvalidInput
from switchboard.rotate import rotate_secret_key
from switchboard.services.channels import channel_credentials, create_channel
from switchboard.settings import Settings
from switchboard.types import Actor

from .conftest import KEY, PASSWORD, T0, Entrypoint, U

NEW = bytes(range(100, 132))


def test_rotate_secret_key(engine: Engine, make_user: Callable[..., U], settings: Settings) -> None:
    user = make_user()
    make_user("bo@example.com")
    with Entrypoint(engine) as u:
        ch = create_channel(u, Actor.system(user.org), key="wa", provider="whatsapp", name="WA", secret_key=KEY,
                            credentials={"token": "s3cret"}).id
        u.commit()
    assert rotate_secret_key(engine, KEY, NEW) == 3
    assert rotate_secret_key(engine, KEY, NEW) == 0  # idempotent
    with Entrypoint(engine) as u:
        assert channel_credentials(u, Actor.system(user.org), ch, NEW) == {"token": "s3cret"}
    with pytest.raises(DecryptionError), Entrypoint(engine) as u:
        channel_credentials(u, Actor.system(user.org), ch, KEY)
    with Entrypoint(engine) as u:
        login(u, user.email, PASSWORD, code_at(user.secret, T0), T0, secret_key=NEW, settings=settings)
    with pytest.raises(DecryptionError, match="nothing was changed"):
        rotate_secret_key(engine, bytes(32), bytes(range(1, 33)))
    with pytest.raises(InvalidInput):
        rotate_secret_key(engine, KEY, KEY)
