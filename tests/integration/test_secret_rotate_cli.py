"""`switchboard secret rotate --old-key K` end to end: the real CLI in a subprocess against the test
database. Afterwards TOTP secrets and channel credentials decrypt with the new key and not with the
old one; a wrong or malformed old key is one clear error line (exit code 2) and changes nothing."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from switchboard.auth.users import create_user
from switchboard.crypto import DecryptionError, decrypt
from switchboard.db.schema import Channel, User
from switchboard.services.channels import channel_credentials, create_channel
from switchboard.services.organizations import create_organization
from switchboard.types import Actor
from switchboard.uow import UnitOfWork

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "switchboard")  # the console script operators run
OLD = bytes(range(32))
NEW = bytes(range(100, 132))
WRONG = bytes(range(200, 232))
CREDS = {"app_secret": "s3cret", "access_token": "tok", "phone_number_id": "100"}


def text_key(key: bytes) -> str:
    """As `switchboard secret-key` prints keys: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


@dataclass(frozen=True)
class Seeded:
    totp: dict[int, str]  # user id -> TOTP secret
    channel_id: int
    org: int


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    with UnitOfWork(engine) as uow:
        org = create_organization(uow, "Rotate Co")
        users = [create_user(uow, org, email=f"{name}@rotate.test", name=name, role=role, secret_key=OLD,
                             password="rotate-password-1") for name, role in (("ana", "admin"), ("bo", "agent"))]
        ch = create_channel(uow, Actor.system(org), key="wa", provider="whatsapp", name="WA", secret_key=OLD,
                            external_id="100", credentials=CREDS)
        uow.commit()
    return Seeded({u.user_id: u.totp_secret for u in users}, ch.id, org)


def rotate(db_url: str, tmp_path: Path, old_key: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=db_url, SWITCHBOARD_SECRET_KEY=text_key(NEW),
               SWITCHBOARD_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    return subprocess.run([CLI, "secret", "rotate", "--old-key", old_key],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def blobs(engine: Engine) -> list[bytes]:
    """Every encrypted value at rest, in a stable order."""
    with UnitOfWork(engine) as uow:
        totp = uow.session.execute(select(User.totp_secret_enc).order_by(User.id)).scalars().all()
        creds = uow.session.execute(select(Channel.credentials_enc).order_by(Channel.id)).scalars().all()
    values = [*totp, *creds]
    assert None not in values, "every user and channel of the fixture has an encrypted secret"
    return [bytes(b) for b in values if b is not None]


def decrypts_with(engine: Engine, seeded: Seeded, key: bytes) -> bool:
    """True if every secret decrypts with ``key`` to its original value; False if none does."""
    results = []
    with UnitOfWork(engine) as uow:
        for user_id, secret in seeded.totp.items():
            blob = uow.session.execute(select(User.totp_secret_enc).where(User.id == user_id)).scalar_one()
            assert blob is not None
            try:
                results.append(decrypt(key, bytes(blob), f"totp:{user_id}".encode()).decode() == secret)
            except DecryptionError:
                results.append(False)
        try:
            results.append(channel_credentials(uow, Actor.system(seeded.org), seeded.channel_id, key) == CREDS)
        except DecryptionError:
            results.append(False)
    assert len(set(results)) == 1, f"some secrets decrypt with this key, others do not: {results}"
    return results[0]


def test_rotate_reencrypts_every_secret_under_the_new_key(engine: Engine, db_url: str, seeded: Seeded,
                                                          tmp_path: Path) -> None:
    assert decrypts_with(engine, seeded, OLD) and not decrypts_with(engine, seeded, NEW)
    done = rotate(db_url, tmp_path, text_key(OLD))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "re-encrypted 3 secrets with the current SWITCHBOARD_SECRET_KEY\n"
    assert decrypts_with(engine, seeded, NEW)
    assert not decrypts_with(engine, seeded, OLD)
    again = rotate(db_url, tmp_path, text_key(OLD))  # values already under the new key are left alone
    assert (again.returncode, again.stdout) == (0, "re-encrypted 0 secrets with the current SWITCHBOARD_SECRET_KEY\n")
    assert decrypts_with(engine, seeded, NEW)


@pytest.mark.parametrize(("old_key", "message"), [
    (text_key(WRONG), r"^error: user \d+: .*; nothing was changed\n$"),
    (text_key(NEW), r"^error: the old and the new key are the same\n$"),
    (text_key(OLD[:16]), r"^error: (both keys|the old key) must be 32 bytes .*\n$"),
    ("not base64 at all!", r"^error: (both keys|the old key) must be 32 bytes .*\n$"),
    ("abcde", r"^error: the old key is not URL-safe base64 .*\n$"),
])
def test_a_wrong_old_key_is_a_clear_error_and_changes_nothing(engine: Engine, db_url: str, seeded: Seeded,
                                                              tmp_path: Path, old_key: str, message: str) -> None:
    before = blobs(engine)
    failed = rotate(db_url, tmp_path, old_key)
    assert failed.returncode == 2, (failed.stdout, failed.stderr)
    assert failed.stdout == ""
    assert "Traceback" not in failed.stderr
    assert failed.stderr.count("\n") == 1
    assert re.match(message, failed.stderr), failed.stderr
    assert blobs(engine) == before
    assert decrypts_with(engine, seeded, OLD)
