"""Configuration, read from the environment (SANCTIONS_*) in one place."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.persistence import DEFAULT_DATABASE_URL


class Settings(BaseSettings):
    """Every knob of the service; each is an environment variable SANCTIONS_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="SANCTIONS_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    """`sqlite:///path/file.db` (default, under ./data/) or `postgresql://user:pass@host:port/db`."""

    api_tokens: str = ""
    """Comma-separated `name:role:token` entries; roles reader, writer, admin."""

    reads_require_token: bool = False
    """When true, reads need a reader token too."""
