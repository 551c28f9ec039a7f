"""From a database URL to the library's settings (`PERSISTENCE_MODULE`, `SQLITE_DBNAME`, …)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

DEFAULT_DATABASE_URL = "sqlite:///data/sanctions.db"


class DatabaseURLError(ValueError):
    """SANCTIONS_DATABASE_URL cannot be used: a configuration error, not a request's."""


def environment_for(database_url: str) -> dict[str, str]:
    """The library's configuration for a `sqlite:///…` or `postgresql://…` URL."""
    parsed = urlparse(database_url)
    scheme = parsed.scheme.split("+")[0]
    if scheme == "sqlite":
        path = database_url.split("://", 1)[1]
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise DatabaseURLError("SANCTIONS_DATABASE_URL: the sqlite URL names no file")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "domain.store.sqlite:SQLiteSanctionsRecorder",
        }
    if scheme in ("postgresql", "postgres"):
        from domain.store.postgres import ensure_schema  # only PostgreSQL users need psycopg

        query = parse_qs(parsed.query)
        schema = query.get("schema", [""])[0]
        ensure_schema(postgres_conninfo(database_url), schema)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parsed.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_SCHEMA": schema,
            "POSTGRES_POOL_SIZE": query.get("pool_size", ["3"])[0],
            "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", ["7"])[0],
            "POSTGRES_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "domain.store.postgres:PostgresSanctionsRecorder",
        }
    raise DatabaseURLError(
        f"SANCTIONS_DATABASE_URL: unsupported database URL {database_url!r}: "
        "use sqlite:///… or postgresql://…"
    )


def postgres_conninfo(database_url: str) -> str:
    """A libpq connection string for the URL, without our own query parameters."""
    parsed = urlparse(database_url)
    return parsed._replace(scheme="postgresql", query="").geturl()
