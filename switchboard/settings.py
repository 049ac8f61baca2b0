"""Settings from the environment (and an optional `.env`), validated once at start.

Every variable is documented in `.env.example`. Invalid values raise :class:`SettingsError`
with a message naming the variable, never a bare stack trace from deep inside a library.
"""

from __future__ import annotations

import base64
import os
import secrets
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """A setting is missing or has a value Switchboard cannot use."""


# setting -> (smallest value, what it means)
_MINIMUMS = {
    "warehouse_build_interval_seconds": (30, "30 seconds"),
    "warehouse_snapshot_retention_minutes": (5, "5 minutes (a reader's snapshot must outlive its query)"),
    "client_free_attempts": (1, "1"),
    "client_max_wait_seconds": (1, "1 second"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    switchboard_home: Path = Path(".switchboard")
    database_url: str | None = None
    switchboard_secret_key: str | None = None
    # the warehouse directory (lake.json + data/, see warehouse/lake.py); default $SWITCHBOARD_HOME/warehouse
    warehouse_path: Path | None = None
    # where a new warehouse keeps its Parquet files (default <warehouse_path>/data/; s3://… possible)
    warehouse_data_path: str | None = None
    # how often the worker builds the warehouse incrementally (each build commits only what changed)
    warehouse_build_interval_seconds: int = 300
    # the warehouse build's CPU priority (nice, 0-19): a batch job behind the app's reads and the inbox
    warehouse_build_nice: int = 10
    # warehouse maintenance (worker): snapshots older than this are expired and their files deleted
    warehouse_snapshot_retention_minutes: int = 60
    public_base_url: str = "http://127.0.0.1:8000"
    # Host names the receiver/API answers (comma separated, * = any); default: PUBLIC_BASE_URL's host + localhost
    allowed_hosts: str | None = None
    app_base_url: str | None = None  # public URL of the Streamlit app (invite links)
    receiver_host: str = "127.0.0.1"
    receiver_port: int = 8000
    receiver_max_body_bytes: int = 1_000_000
    app_port: int = 8501
    sandbox_port: int = 8787
    prefect_port: int = 4200
    default_timezone: str = "UTC"
    session_idle_minutes: int = 60
    session_absolute_hours: int = 12
    lockout_attempts: int = 5
    lockout_minutes: int = 15
    # per client address, across accounts: this many failed sign-ins an hour, then a growing wait
    client_free_attempts: int = 20
    client_max_wait_seconds: int = 900
    # behind a reverse proxy: take the client address from X-Forwarded-For (the entry the proxy added)
    trust_forwarded_for: bool = False
    presence_away_seconds: int = 120
    presence_offline_grace_seconds: int = 300
    outbox_max_attempts: int = 6
    # admins see a warning this many days before a channel's access token expires (check-credentials flow)
    credential_expiry_warn_days: int = 14
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "switchboard@localhost"
    log_level: str = "INFO"

    @field_validator("receiver_port", "app_port", "sandbox_port", "prefect_port", "smtp_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 0 < value < 65536:
            raise ValueError("must be a TCP port between 1 and 65535")
        return value

    @field_validator("warehouse_build_nice")
    @classmethod
    def _nice(cls, value: int) -> int:
        if not 0 <= value <= 19:
            raise ValueError("must be a niceness between 0 (normal priority) and 19 (lowest)")
        return value

    @field_validator(*_MINIMUMS)
    @classmethod
    def _at_least(cls, value: int, info: ValidationInfo) -> int:
        least, why = _MINIMUMS[str(info.field_name)]
        if value < least:
            raise ValueError(f"must be at least {why}")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _db(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError("must be a PostgreSQL URL such as postgresql://user:pass@host:5432/db")
        return value

    @field_validator("switchboard_secret_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            raw = base64.urlsafe_b64decode(value.encode() + b"=" * (-len(value) % 4))
        except Exception as exc:
            raise ValueError("must be 32 bytes encoded as URL-safe base64") from exc
        if len(raw) != 32:
            raise ValueError("must decode to exactly 32 bytes (AES-256); generate one with "
                             "`switchboard secret-key`")
        return value

    # --- derived paths -------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.switchboard_home.expanduser().resolve()

    @property
    def pg_data_dir(self) -> Path:
        return self.home / "pgdata"

    @property
    def warehouse_file(self) -> Path:
        return (self.warehouse_path or self.home / "warehouse").expanduser().resolve()

    @property
    def media_dir(self) -> Path:
        return self.home / "media"

    def secret_key_bytes(self) -> bytes:
        """The AES-256 key. Raises SettingsError if none is configured."""
        if not self.switchboard_secret_key:
            raise SettingsError(
                "SWITCHBOARD_SECRET_KEY is not set. Generate one with `switchboard secret-key` and put it "
                "in the environment or .env (the demo generates one into SWITCHBOARD_HOME)."
            )
        value = self.switchboard_secret_key
        return base64.urlsafe_b64decode(value.encode() + b"=" * (-len(value) % 4))


def new_secret_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one readable SettingsError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper() or "settings"
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError("Invalid settings:\n" + "\n".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process. Without SWITCHBOARD_SECRET_KEY, a key file the demo generated in
    SWITCHBOARD_HOME is used, so every command works against a demo installation."""
    settings = load_settings()
    if not settings.switchboard_secret_key:
        key_file = settings.home / "secret.key"
        if key_file.is_file():
            settings = load_settings(switchboard_secret_key=key_file.read_text().strip())
    return settings


def ensure_local_secret_key(settings: Settings) -> tuple[Settings, bool]:
    """For the demo: load or create a key file under SWITCHBOARD_HOME. Returns (settings, created)."""
    if settings.switchboard_secret_key:
        return settings, False
    path = settings.home / "secret.key"
    created = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new_secret_key())
        path.chmod(0o600)
        created = True
    key = path.read_text().strip()
    os.environ["SWITCHBOARD_SECRET_KEY"] = key
    get_settings.cache_clear()
    return load_settings(switchboard_secret_key=key), created
