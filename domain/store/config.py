"""From a database URL to the library's settings (`PERSISTENCE_MODULE`, `SQLITE_DBNAME`, …)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

DEFAULT_DATABASE_URL = "sqlite:///data/sanctions.db"
SQLITE_EVENTS_TABLE = "stored_events"
"""The library's SQLite recorder always names its events table so."""
POSTGRES_EVENTS_TABLE = "sanctionstimeline_events"
"""The library's PostgreSQL recorder names it after the application: `SanctionsTimeline`
(`domain.application.APPLICATION_NAME`) lower-cased, plus `_events`."""


class DatabaseURLError(ValueError):
    """SANCTIONS_DATABASE_URL cannot be used: a configuration error, not a request's."""


def environment_for(database_url: str) -> dict[str, str]:
    """The library's configuration for a `sqlite:///…`, `postgresql://…` or `memory:` URL."""
    parsed = urlparse(database_url)
    scheme = parsed.scheme.split("+")[0]
    if scheme == "memory":  # this process's memory, and an in-memory SQLite beside it
        return {"PERSISTENCE_MODULE": "domain.store.memory:MemoryFactory"}
    if scheme == "sqlite":
        path = sqlite_path(database_url)
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
            # The library's, with a datastore that fails fast (domain.store.postgres).
            "PERSISTENCE_MODULE": "domain.store.postgres:SanctionsPostgresFactory",
            "POSTGRES_DBNAME": unquote(parsed.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_SCHEMA": schema,
            "POSTGRES_POOL_SIZE": query.get("pool_size", ["3"])[0],
            "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", ["7"])[0],
            "POSTGRES_LOCK_TIMEOUT": "30",
            # Fail fast when the database is gone: seconds, not the library's 30.
            "POSTGRES_CONNECT_TIMEOUT": query.get("connect_timeout", ["3"])[0],
            # A connection the server dropped is replaced: each is tried as it is taken
            # from the pool, by the datastore (the pool's own check sleeps after each).
            "POSTGRES_PRE_PING": "n",
            "APPLICATION_RECORDER_TOPIC": "domain.store.postgres:PostgresSanctionsRecorder",
        }
    raise DatabaseURLError(
        f"SANCTIONS_DATABASE_URL: unsupported database URL {database_url!r}: "
        "use sqlite:///…, postgresql://… or memory:"
    )


@contextmanager
def setup_lock(database_url: str) -> Iterator[None]:
    """Inside the block, no other process sets up the same store: on PostgreSQL an
    advisory lock per schema, so processes may start at once on a fresh database
    (SQLite's own file lock already serialises its schema changes)."""
    parsed = urlparse(database_url)
    if parsed.scheme.split("+")[0] not in ("postgresql", "postgres"):
        yield
        return
    from domain.store.postgres import advisory_lock

    schema = parse_qs(parsed.query).get("schema", [""])[0] or "public"
    with advisory_lock(postgres_conninfo(database_url), f"sanctions-setup:{schema}"):
        yield


def sqlite_path(database_url: str) -> str:
    """The file a `sqlite:///…` URL names, as the library opens it (relative to the
    working directory unless absolute)."""
    path = database_url.split("://", 1)[1]
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise DatabaseURLError("SANCTIONS_DATABASE_URL: the sqlite URL names no file")
    return path


def postgres_conninfo(database_url: str) -> str:
    """A libpq connection string for the URL, without our own query parameters."""
    parsed = urlparse(database_url)
    return parsed._replace(scheme="postgresql", query="").geturl()


class DatabaseUnreachable(Exception):
    """The database could not be looked at (server down, no such database, not SQLite)."""


def database_location(database_url: str) -> str:
    """The database a URL points at, for people: a SQLite URL with the file's absolute
    path, a PostgreSQL URL without its password."""
    parsed = urlparse(database_url)
    if parsed.scheme.split("+")[0] == "sqlite":
        path = sqlite_path(database_url)
        return f"sqlite:///{path if _in_memory(path) else Path(path).absolute()}"
    host = parsed.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parsed.port is not None:
        netloc += f":{parsed.port}"
    if parsed.username:
        netloc = f"{parsed.username}@{netloc}"
    return parsed._replace(netloc=netloc).geturl()


def missing_event_store(database_url: str) -> str | None:
    """Why the URL has no event store yet (None when it has one), found out without
    creating anything: no SQLite file or folder, no PostgreSQL schema or table.
    DatabaseUnreachable when the database cannot be looked at."""
    parsed = urlparse(database_url)
    scheme = parsed.scheme.split("+")[0]
    if scheme == "memory":
        return "an in-memory store is empty whenever a command starts"
    if scheme == "sqlite":
        return _missing_in_sqlite(sqlite_path(database_url))
    if scheme in ("postgresql", "postgres"):
        schema = parse_qs(parsed.query).get("schema", [""])[0].strip() or "public"
        return _missing_in_postgres(database_url, schema)
    environment_for(database_url)  # raises DatabaseURLError, naming the schemes it takes
    return None


def _in_memory(path: str) -> bool:
    return ":memory:" in path or "mode=memory" in path


def _missing_in_sqlite(path: str) -> str | None:
    import sqlite3

    if _in_memory(path):
        return "an in-memory database is empty whenever a command starts"
    file = Path(path).absolute()
    if not file.is_file():
        return "the file does not exist"
    try:
        # mode=rw: open the file only if it is there, never create it.
        with closing(sqlite3.connect(f"{file.as_uri()}?mode=rw", uri=True, timeout=30)) as db:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                (SQLITE_EVENTS_TABLE,),
            ).fetchone()
    except sqlite3.DatabaseError as error:
        raise DatabaseUnreachable(f"cannot read {file} as a SQLite database: {error}") from None
    return None if found else f"the file has no table {SQLITE_EVENTS_TABLE}"


def _missing_in_postgres(database_url: str, schema: str) -> str | None:
    import psycopg  # only PostgreSQL users need psycopg

    try:
        with psycopg.connect(postgres_conninfo(database_url), connect_timeout=10) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = %s",
                (schema, POSTGRES_EVENTS_TABLE),
            ).fetchone()
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DatabaseUnreachable(
            f"cannot look at {database_location(database_url)}: {reason}"
        ) from None
    return None if found else f"schema {schema} has no table {POSTGRES_EVENTS_TABLE}"
