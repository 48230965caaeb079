"""The one settings object. Every knob is an environment variable prefixed ``FIREMODE_``."""

from __future__ import annotations

import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger("firemode.settings")

VAR_DIR = Path("var")
DEFAULT_SQLITE_PATH = VAR_DIR / "firemode.db"
DEFAULT_DATABASE_URL = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"
GENERATED_SECRET_PATH = VAR_DIR / "jwt-secret"
MIN_SECRET_BYTES = 32


class SettingsError(RuntimeError):
    """Raised when the configuration is unfit to start (production safety checks)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIREMODE_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "firemode"
    jwt_audience: str = "firemode-api"
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=30, le=24 * 3600)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    jwt_leeway_seconds: int = Field(default=10, ge=0, le=120)
    # A refresh token presented again this soon after its rotation, whose successor is
    # still unused, is a client retry (lost response), not theft. 0 disables.
    refresh_reuse_grace_seconds: int = Field(default=30, ge=0, le=600)
    # Login throttling (docs/security.md): failures per (email, client address)...
    login_max_failures: int = Field(default=5, ge=1)
    # ...per client address: many people may share one (an office behind NAT)...
    login_max_failures_per_address: int = Field(default=50, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1)
    # ...and per email from every address: past this many, a progressive delay (capped)
    # for addresses that never logged in to the account.
    login_email_free_failures: int = Field(default=10, ge=1)
    login_email_max_delay_seconds: float = Field(default=10.0, ge=1, le=300)
    login_known_address_days: int = Field(default=30, ge=1, le=366)
    max_concurrent_password_hashes: int = Field(default=4, ge=1)
    # Redis (revocation cache, login throttling): every key starts with this prefix.
    redis_key_prefix: str = Field(default="firemode:", min_length=1, max_length=100)
    redis_timeout_seconds: float = Field(default=0.5, gt=0, le=10)
    # After a Redis failure, go straight to the database for this long.
    redis_retry_seconds: float = Field(default=2.0, ge=0, le=300)
    # The revocation cache is rebuilt from the database at least this often.
    redis_resync_seconds: int = Field(default=60, ge=1, le=3600)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_clock_skew_seconds: int = Field(default=5 * 60, ge=0)
    max_document_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Ops one session's results log may hold.
    max_session_ops: int = Field(default=200_000, ge=1)
    # Bytes of paths and values one session's results log may hold (it is append-only).
    max_session_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # About how many bytes of op values one delta page (GET ...?since=) carries.
    max_delta_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    # Evidence (photos, documents): files under this directory unless an S3 bucket is set.
    evidence_dir: Path = VAR_DIR / "evidence"
    max_evidence_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    evidence_retention_days: int = Field(default=7 * 365 + 2, ge=1)  # 7 years, leap days
    # Whole reads of blobs up to this size are hashed before the first byte is sent.
    evidence_verify_before_send_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # Staged uploads and unreferenced blobs younger than this are never purged.
    evidence_orphan_grace_seconds: int = Field(default=3600, ge=0)
    evidence_s3_bucket: str | None = None
    evidence_s3_prefix: str = ""
    evidence_s3_endpoint_url: str | None = None
    evidence_s3_region: str | None = None
    evidence_s3_access_key_id: str | None = None
    evidence_s3_secret_access_key: SecretStr | None = None
    # Object lock on every stored blob; None only for buckets without object lock.
    evidence_s3_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] | None = "COMPLIANCE"
    db_pool_size: int = Field(default=10, ge=1)
    # No overflow by default: under sustained load an overflow connection is opened and
    # closed around every request that needs it (connection set-up on both sides cost
    # more CPU than the request); requests beyond the pool wait for a connection instead.
    db_pool_max_overflow: int = Field(default=0, ge=0)
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)
    # Seconds between audit sealing passes in each server process (0: never; then run
    # `firemode audit seal --loop`). Passes never overlap across processes.
    audit_seal_interval_seconds: float = Field(default=1.0, ge=0, le=3600)
    # Webhook deliveries (``firemode worker``): attempts before a delivery is dead-lettered,
    # exponential backoff with jitter between attempts, the receiver's time to answer, and
    # how long a worker holds a delivery it is sending (longer than the timeout).
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_base_seconds: float = Field(default=10.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_batch_size: int = Field(default=50, ge=1, le=1000)
    # The worker serves its Prometheus metrics on this port when set.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # The service schedule: "today" for due / overdue is taken in this time zone; occurrences
    # are materialised from this many days back (windows ending earlier are history) to
    # this many days ahead (the daily ``firemode schedule sweep`` moves it forward).
    schedule_timezone: str = "Australia/Sydney"
    schedule_lookback_days: int = Field(default=366, ge=0, le=3660)
    schedule_horizon_days: int = Field(default=731, ge=31, le=3660)
    # The offline bundle's hard cap, compressed; over it the client must ask for a subset.
    max_bundle_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    # When set, GET /metrics needs "Authorization: Bearer <this>".
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 8080

    @field_validator("evidence_s3_lock_mode", mode="before")
    @classmethod
    def _no_lock(cls, value: object) -> object:
        return None if value in ("", "none", "NONE") else value

    @model_validator(mode="after")
    def _production_guards(self) -> Settings:
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value().encode()) < (
            MIN_SECRET_BYTES
        ):
            # Refused at start-up, not at the first login.
            raise SettingsError(f"FIREMODE_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.env != "production":
            return self
        if "FIREMODE_DATABASE_URL" not in os.environ and self.database_url == DEFAULT_DATABASE_URL:
            raise SettingsError(
                "FIREMODE_ENV=production refuses the embedded SQLite default: "
                "set FIREMODE_DATABASE_URL"
            )
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(
                f"FIREMODE_ENV=production needs FIREMODE_JWT_SECRET of at least "
                f"{MIN_SECRET_BYTES} bytes"
            )
        return self

    @model_validator(mode="after")
    def _webhook_lease_outlives_a_request(self) -> Settings:
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise SettingsError(
                "FIREMODE_WEBHOOK_LEASE_SECONDS must exceed FIREMODE_WEBHOOK_TIMEOUT_SECONDS"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_default_database(self) -> bool:
        return self.database_url == DEFAULT_DATABASE_URL

    def signing_secret(self) -> str:
        """The JWT signing secret; in development one is generated once into ./var/."""
        if self.jwt_secret is not None:
            secret = self.jwt_secret.get_secret_value()
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise SettingsError(
                    f"FIREMODE_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes"
                )
            return secret
        return _generated_secret()


@lru_cache(maxsize=1)
def _generated_secret() -> str:
    if GENERATED_SECRET_PATH.exists():
        return GENERATED_SECRET_PATH.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(GENERATED_SECRET_PATH, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its secret
        return GENERATED_SECRET_PATH.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    logger.warning(
        "no FIREMODE_JWT_SECRET configured: generated a development signing secret",
        extra={"path": str(GENERATED_SECRET_PATH)},
    )
    return secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
