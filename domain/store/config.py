"""From a database URL to the library's settings (`PERSISTENCE_MODULE`, `SQLITE_DBNAME`, …)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

DEFAULT_DATABASE_URL = "sqlite:///data/sanctions.db"
SQLITE_EVENTS_TABLE = "stored_events"
"""The library's SQLite recorder always names its events table so."""
POSTGRES_EVENTS_TABLE = "sanctionstimeline_events"
"""The library's PostgreSQL recorder names it after the application: `SanctionsTimeline`
(`domain.application.APPLICATION_NAME`) lower-cased, plus `_events`."""


class DatabaseURLError(ValueError):
    """SANCTIONS_DATABASE_URL cannot be used: a configuration error, not a request's."""


def environment_for(database_url: str, *, create: bool = True) -> dict[str, str]:
    """The library's configuration for a `sqlite:///…`, `postgresql://…` or `memory:` URL;
    not `create`: a PostgreSQL store that is only read (a standby), where no schema or
    table is created."""
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

        url = PostgresURL.parse(database_url)
        schema, own = url.own.get("schema", ""), url.own
        if create:
            ensure_schema(url.conninfo(), schema)
        return {
            "CREATE_TABLE": "y" if create else "n",
            # The library's, with a datastore that fails fast (domain.store.postgres).
            "PERSISTENCE_MODULE": "domain.store.postgres:SanctionsPostgresFactory",
            # Hosts and ports stay lists (`h1,h2` and `5433,5434`): libpq tries each in turn.
            "POSTGRES_DBNAME": url.libpq.get("dbname") or "postgres",
            "POSTGRES_HOST": url.libpq.get("host") or "127.0.0.1",
            "POSTGRES_PORT": url.libpq.get("port") or "5432",
            "POSTGRES_USER": url.libpq.get("user") or "postgres",
            "POSTGRES_PASSWORD": url.libpq.get("password") or "",
            # The rest of libpq's settings (target_session_attrs, sslmode, …), kept whole.
            "SANCTIONS_POSTGRES_OPTIONS": url.conninfo(only=OPTIONS),
            "POSTGRES_SCHEMA": schema,
            "POSTGRES_POOL_SIZE": own.get("pool_size", "3"),
            "POSTGRES_MAX_OVERFLOW": own.get("max_overflow", "7"),
            "POSTGRES_LOCK_TIMEOUT": "30",
            # Fail fast when the database is gone: seconds, not the library's 30.
            "POSTGRES_CONNECT_TIMEOUT": url.connect_timeout,
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

    schema = PostgresURL.parse(database_url).own.get("schema", "") or "public"
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
    """A libpq connection string for the URL, without our own query parameters (every
    host, port and libpq setting kept)."""
    return PostgresURL.parse(database_url).conninfo()


OWN_PARAMETERS = ("schema", "pool_size", "max_overflow")
"""Query parameters of a PostgreSQL URL that are the service's, not libpq's."""
CONNECTION = ("dbname", "host", "port", "user", "password")
"""What the library's datastore takes as arguments of its own."""
OPTIONS = "options"
VANISHED_HOST = {
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}
"""libpq's TCP settings for a server whose host vanished (powered off, cut off by the
network: no reset ever comes back), which the kernel would otherwise wait on for a
quarter of an hour: an idle connection (pooled, listening) is found dead by keepalives
after about 11 s of silence, one waiting on an answer once what it sent has gone 10 s
unacknowledged. The URL's own values win."""


@dataclass(frozen=True)
class PostgresURL:
    """A `postgresql://` URL as libpq reads it — several hosts (`h1:5433,h2:5434`) and
    any libpq parameter (`target_session_attrs=read-write`, `sslmode`, …) included —
    with the service's own query parameters set apart."""

    libpq: dict[str, str]
    own: dict[str, str]

    @classmethod
    def parse(cls, database_url: str) -> PostgresURL:
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        rest = database_url.split("://", 1)[1] if "://" in database_url else ""
        address, _, query = rest.partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        own = {key: value for key, value in pairs if key in OWN_PARAMETERS}
        theirs = urlencode([(key, value) for key, value in pairs if key not in OWN_PARAMETERS])
        try:
            libpq = conninfo_to_dict(f"postgresql://{address}" + (f"?{theirs}" if theirs else ""))
        except ProgrammingError as error:
            raise DatabaseURLError(
                f"SANCTIONS_DATABASE_URL: libpq cannot read the PostgreSQL URL: {error}"
            ) from None
        return cls({key: str(value) for key, value in libpq.items()}, own)

    @property
    def connect_timeout(self) -> str:
        """Seconds to wait for a connection: the URL's, else 3 (not the library's 30)."""
        return self.libpq.get("connect_timeout") or "3"

    def conninfo(self, only: str = "") -> str:
        """A libpq connection string: everything, or (`only=OPTIONS`) all but what the
        library's datastore takes as arguments."""
        from psycopg.conninfo import make_conninfo

        # The library's defaults for host and user, so that every connection meets one server.
        settings = {"host": "127.0.0.1", "user": "postgres", **VANISHED_HOST, **self.libpq}
        settings.setdefault("connect_timeout", self.connect_timeout)
        if only == OPTIONS:
            settings = {key: value for key, value in settings.items() if key not in CONNECTION}
        return make_conninfo(**settings)


class DatabaseUnreachable(Exception):
    """The database could not be looked at (server down, no such database, not SQLite)."""


def database_location(database_url: str) -> str:
    """The database a URL points at, for people: a SQLite URL with the file's absolute
    path, a PostgreSQL URL without its password."""
    parsed = urlparse(database_url)
    if parsed.scheme.split("+")[0] == "sqlite":
        path = sqlite_path(database_url)
        return f"sqlite:///{path if _in_memory(path) else Path(path).absolute()}"
    url = PostgresURL.parse(database_url)
    hosts = url.libpq.get("host", "").split(",")
    ports = url.libpq.get("port", "").split(",")
    ports = ports * len(hosts) if len(ports) == 1 else ports  # one port serves every host
    netloc = ",".join(
        (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        for host, port in zip(hosts, ports, strict=False)
    )
    if url.libpq.get("user"):
        netloc = f"{url.libpq['user']}@{netloc}"
    # Everything but the password, which is never shown.
    query = [(k, v) for k, v in parse_qsl(parsed.query, keep_blank_values=True) if k != "password"]
    return parsed._replace(netloc=netloc, query=urlencode(query)).geturl()


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
        schema = PostgresURL.parse(database_url).own.get("schema", "").strip() or "public"
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
