"""Configuration, read from the environment (SANCTIONS_*) in one place."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.store.config import DEFAULT_DATABASE_URL


class Settings(BaseSettings):
    """Every knob of the service; each is an environment variable SANCTIONS_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="SANCTIONS_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    """`sqlite:///path/file.db` (default, under ./data/) or `postgresql://user:pass@host:port/db`."""

    read_database_url: str | None = None
    """A PostgreSQL standby (or several: a multi-host URL, `target_session_attrs=
    prefer-standby`) that reads are answered from, each settled at what the standby has
    replayed and projected; writes, verify and rebuild stay on `database_url`."""

    signing_key_file: Path | None = None
    """The Ed25519 key that signs checkpoints of the log; created (mode 0600) if absent.
    Default: beside the SQLite file (`data/sanctions.signing.key`), or `data/signing.key`
    for PostgreSQL, where deployments mount a secret. Never in the database."""

    signing_key_name: str = "sanctions-timeline"
    """The name a new signing key is given: the checkpoints' origin line and key name."""

    api_tokens: str = ""
    """Comma-separated `name:role:token` entries; roles reader, writer, admin."""

    reads_require_token: bool = False
    """When true, reads need a reader token too."""

    embedded_projector: bool = True
    """Run the projector in the API process (the default). Set false when a separate
    `sanctions project` process keeps the read models of a shared PostgreSQL."""

    projector_poll_seconds: float = 0.25
    """How often the projector looks for events recorded by other processes."""

    read_your_writes_timeout: float = 2.0
    """How long a write waits for the read models to show it; past that it is answered
    201 all the same, with `Projection-Pending: true`."""

    sse_poll_seconds: float = 0.2
    """Where the store cannot notify (SQLite, memory), how often one look at the log's
    last position finds events other processes recorded, for every live stream at once
    (this process's own writes wake the streams at once)."""

    sse_ping_seconds: float = 15.0
    """Keep-alive comments on an idle live event stream, every this many seconds."""

    sse_send_timeout_seconds: float = Field(default=30.0, gt=0)
    """A live stream whose client has taken nothing of what was sent for this long is
    closed; the client resumes with `Last-Event-ID`. Bounds what a slow reader holds."""

    max_streams: int = Field(default=100, ge=0)
    """The most live event streams one process serves at once; past it a new one is
    answered 503 `too-many-streams` with `Retry-After`."""

    ready_max_lag_events: int = 1000
    """`/readyz` answers 503 while the read models are more events behind than this."""

    webhook_allow_hosts: str = ""
    """Comma-separated host names (`*.example.com` for subdomains), IP addresses and CIDR
    ranges webhooks may be sent to, each optionally with `:port` (`[::1]:8080` for IPv6);
    empty (the default) allows none. A private, loopback or link-local address needs an
    address or range entry; a name allows public ones. Ports other than 80 and 443 must be
    listed with the host."""

    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long one webhook attempt may take as a whole: connect, send, and read the answer."""

    webhook_backoff_base_seconds: float = Field(default=1.0, gt=0)
    """The first retry waits up to this long; each further one up to twice as long."""

    webhook_backoff_cap_seconds: float = Field(default=600.0, gt=0)
    """The longest wait between two attempts (full jitter below it)."""

    webhook_lease_seconds: float = Field(default=30.0, gt=0)
    """How long a process keeps a subscription to itself without renewing it: another
    process takes over a dead one's subscriptions after this (at least twice the timeout and
    a second), or at once when it knows that process is gone."""
