"""The settings object's safety checks."""

from __future__ import annotations

import pytest

from src.app.core.settings import DEFAULT_DATABASE_URL, Settings, SettingsError


def test_production_refuses_embedded_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIREMODE_DATABASE_URL", raising=False)
    with pytest.raises(SettingsError, match="refuses the embedded SQLite default"):
        Settings(env="production", jwt_secret="s" * 40)  # type: ignore[arg-type]


def test_production_refuses_missing_or_short_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREMODE_DATABASE_URL", "postgresql+asyncpg://db/firemode")
    monkeypatch.delenv("FIREMODE_JWT_SECRET", raising=False)
    with pytest.raises(SettingsError, match="FIREMODE_JWT_SECRET of at least 32 bytes"):
        Settings(env="production")
    with pytest.raises(SettingsError, match="FIREMODE_JWT_SECRET must be at least 32 bytes"):
        Settings(env="production", jwt_secret="short")  # type: ignore[arg-type]


def test_production_accepts_real_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREMODE_DATABASE_URL", "postgresql+asyncpg://db/firemode")
    monkeypatch.setenv("FIREMODE_JWT_SECRET", "s" * 40)
    settings = Settings(env="production")
    assert settings.database_url == "postgresql+asyncpg://db/firemode"
    assert settings.signing_secret() == "s" * 40


def test_no_configuration_means_embedded_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FIREMODE_DATABASE_URL", "FIREMODE_ENV", "FIREMODE_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///var/firemode.db"
    assert settings.is_sqlite
    assert settings.uses_default_database


def test_short_configured_secret_is_refused_at_start_even_in_development() -> None:
    with pytest.raises(SettingsError, match="FIREMODE_JWT_SECRET must be at least 32 bytes"):
        Settings(jwt_secret="short")  # type: ignore[arg-type]
