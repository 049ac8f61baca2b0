from __future__ import annotations

import os

import pytest

from switchboard.crypto import DecryptionError, decrypt, decrypt_json, encrypt, encrypt_json
from switchboard.settings import SettingsError, load_settings, new_secret_key


def test_bad_settings_give_one_readable_error() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(receiver_port=70000, default_timezone="Mars/Olympus", database_url="mysql://x")
    text = str(err.value)
    assert "RECEIVER_PORT" in text and "DEFAULT_TIMEZONE" in text and "DATABASE_URL" in text
    assert "Traceback" not in text


def test_secret_key_must_be_32_bytes() -> None:
    with pytest.raises(SettingsError, match="SWITCHBOARD_SECRET_KEY"):
        load_settings(switchboard_secret_key="dG9vLXNob3J0")
    key = new_secret_key()
    assert len(load_settings(switchboard_secret_key=key).secret_key_bytes()) == 32


def test_missing_secret_key_explains_how_to_make_one() -> None:
    s = load_settings(switchboard_secret_key="")
    with pytest.raises(SettingsError, match="switchboard secret-key"):
        s.secret_key_bytes()


def test_aes_gcm_roundtrip_binds_key_and_context() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    blob = encrypt(k1, b"totp-secret", b"totp:1")
    assert decrypt(k1, blob, b"totp:1") == b"totp-secret"
    assert encrypt(k1, b"x") != encrypt(k1, b"x")  # random nonce
    with pytest.raises(DecryptionError, match="different"):
        decrypt(k2, blob, b"totp:1")
    with pytest.raises(DecryptionError, match="authentication"):
        decrypt(k1, blob, b"totp:2")  # moved to another row
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(DecryptionError):
        decrypt(k1, tampered, b"totp:1")
    assert decrypt_json(k1, encrypt_json(k1, {"a": 1})) == {"a": 1}


def test_warehouse_build_interval_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.worker import SCHEDULES, intervals
    from switchboard.settings import get_settings

    monkeypatch.delenv("WAREHOUSE_BUILD_INTERVAL_SECONDS", raising=False)
    get_settings.cache_clear()
    assert intervals()["warehouse-build"] == 300 and set(intervals()) == set(SCHEDULES)
    monkeypatch.setenv("WAREHOUSE_BUILD_INTERVAL_SECONDS", "120")
    get_settings.cache_clear()
    try:
        assert intervals()["warehouse-build"] == 120
    finally:
        get_settings.cache_clear()
    with pytest.raises(SettingsError, match="WAREHOUSE_BUILD_INTERVAL_SECONDS"):
        load_settings(warehouse_build_interval_seconds=5)


def test_warehouse_build_nice_is_a_niceness() -> None:
    assert load_settings().warehouse_build_nice == 10
    assert load_settings(warehouse_build_nice=0).warehouse_build_nice == 0
    for bad in (-1, 20):
        with pytest.raises(SettingsError, match="WAREHOUSE_BUILD_NICE"):
            load_settings(warehouse_build_nice=bad)
