"""Storage: the library's SQLite and PostgreSQL recorders, plus rows written with the events.

Following the library's `searchabletimestamps` example, the application recorder is
subclassed so that, in the very transaction that stores a batch of events, it also
writes an index of those events (their ids and stream keys, for look-ups and
filters) and the Idempotency-Key that produced them. Either everything is stored or
nothing is: an acknowledged write can neither lose its key nor its index entries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlparse
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.errors import InvalidInput

Dialect = Literal["sqlite", "postgres"]
DEFAULT_DATABASE_URL = "sqlite:///data/sanctions.db"


@dataclass(frozen=True)
class IndexRow:
    """What look-ups and filters need of one stored event."""

    originator_id: UUID
    originator_version: int
    event_id: UUID
    stream: str
    authority: str
    country: str
    commodity: str
    type: str


@dataclass(frozen=True)
class IdempotencyRecord:
    """An Idempotency-Key, the request it came with, and the events it recorded."""

    caller: str
    key: str
    request_hash: str
    event_ids: tuple[str, ...]


@dataclass(frozen=True)
class PositionedEvent:
    """A stored event and its global position in the log."""

    position: int
    stored: StoredEvent


@dataclass(frozen=True)
class EventFilter:
    """Which events a read wants; every field optional."""

    authority: str | None = None
    country: str | None = None
    commodity: str | None = None
    type: str | None = None
    stream: str | None = None
    event_id: UUID | None = None

    def clauses(self, prefix: str = "") -> tuple[list[str], list[Any]]:
        """SQL conditions on the event index (`?` placeholders) for the key filters."""
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("authority", "country", "commodity", "type", "stream"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{prefix}{column} = ?")
                params.append(value)
        return clauses, params


SIDE_TABLES = (
    "CREATE TABLE IF NOT EXISTS {event_index} ("
    " originator_id {id_type} NOT NULL,"
    " originator_version BIGINT NOT NULL,"
    " event_id TEXT NOT NULL UNIQUE,"
    " stream TEXT NOT NULL,"
    " authority TEXT NOT NULL,"
    " country TEXT NOT NULL,"
    " commodity TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " PRIMARY KEY (originator_id, originator_version))",
    "CREATE INDEX IF NOT EXISTS event_index_country_commodity"
    " ON {event_index} (country, commodity)",
    "CREATE INDEX IF NOT EXISTS event_index_stream ON {event_index} (stream)",
    "CREATE TABLE IF NOT EXISTS {idempotency_keys} ("
    " caller TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " request_hash TEXT NOT NULL,"
    " event_ids TEXT NOT NULL,"
    " PRIMARY KEY (caller, key))",
)


def as_bytes(value: Any) -> bytes:
    """A stored event's state; text when the column was rewritten behind our back."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


class Cursor:
    """A DB-API-like cursor that takes `?` placeholders on either database."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        if self.dialect == "postgres":
            statement = statement.replace("?", "%s")
        self.raw.execute(statement, tuple(params))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.dialect == "postgres":
            statement = statement.replace("?", "%s")
        self.raw.executemany(statement, [tuple(row) for row in rows])

    def fetchall(self) -> list[Any]:
        return list(self.raw.fetchall())

    def fetchone(self) -> Any:
        return self.raw.fetchone()


class Transactions:
    """Transactions on a recorder's own datastore, with `?` placeholders either way."""

    dialect: Dialect
    datastore: Any  # the library's SQLiteDatastore or PostgresDatastore

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[Cursor]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield Cursor(cursor, self.dialect)


class SanctionsRecorderMixin(Transactions):
    """The SQL both databases share; subclasses say how ids and tables are spelt."""

    dialect: Dialect
    events_table_name: str
    position_column: str

    def qualified(self, table: str) -> str:
        raise NotImplementedError

    def id_param(self, value: UUID) -> Any:
        raise NotImplementedError

    def id_value(self, value: Any) -> UUID:
        raise NotImplementedError

    def side_table_statements(self, id_type: str) -> list[str]:
        return [
            statement.format(
                event_index=self.qualified("event_index"),
                idempotency_keys=self.qualified("idempotency_keys"),
                id_type=id_type,
            )
            for statement in SIDE_TABLES
        ]

    def write_side_rows(self, cursor: Cursor, kwargs: dict[str, Any]) -> None:
        index: Sequence[IndexRow] = kwargs.get("index", ())
        if index:
            cursor.executemany(
                f"INSERT INTO {self.qualified('event_index')} VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        self.id_param(row.originator_id),
                        row.originator_version,
                        str(row.event_id),
                        row.stream,
                        row.authority,
                        row.country,
                        row.commodity,
                        row.type,
                    )
                    for row in index
                ],
            )
        idempotency: IdempotencyRecord | None = kwargs.get("idempotency")
        if idempotency is not None:
            cursor.execute(
                f"INSERT INTO {self.qualified('idempotency_keys')} VALUES (?,?,?,?)",
                (
                    idempotency.caller,
                    idempotency.key,
                    idempotency.request_hash,
                    json.dumps(list(idempotency.event_ids)),
                ),
            )

    def find_idempotency(self, caller: str, key: str) -> IdempotencyRecord | None:
        """The record an earlier request with this key left, if any."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT request_hash, event_ids FROM {self.qualified('idempotency_keys')}"
                " WHERE caller = ? AND key = ?",
                (caller, key),
            )
            row = cursor.fetchone()
        if row is None:
            return None
        return IdempotencyRecord(
            caller, key, row["request_hash"], tuple(json.loads(row["event_ids"]))
        )

    def positioned(self, row: Any) -> PositionedEvent:
        """A stored event (and its position) from a row selected as `event_position`,
        `originator_id`, `originator_version`, `topic`, `state`."""
        return PositionedEvent(
            int(row["event_position"]),
            StoredEvent(
                originator_id=self.id_value(row["originator_id"]),
                originator_version=int(row["originator_version"]),
                topic=row["topic"],
                state=as_bytes(row["state"]),
            ),
        )

    def select_positioned(
        self,
        where: EventFilter = EventFilter(),
        *,
        after: int | None = None,
        limit: int | None = None,
        event_ids: Sequence[str] = (),
    ) -> list[PositionedEvent]:
        """Stored events matching `where`, in position order, with their positions."""
        clauses, params = where.clauses("i.")
        if where.event_id is not None:
            clauses.append("i.event_id = ?")
            params.append(str(where.event_id))
        if event_ids:
            clauses.append(f"i.event_id IN ({','.join('?' * len(event_ids))})")
            params.extend(event_ids)
        if after is not None:
            clauses.append(f"s.{self.position_column} > ?")
            params.append(after)
        statement = (
            f"SELECT s.{self.position_column} AS event_position, s.originator_id,"
            " s.originator_version, s.topic, s.state"
            f" FROM {self.qualified(self.events_table_name)} s"
            f" JOIN {self.qualified('event_index')} i"
            " ON i.originator_id = s.originator_id"
            " AND i.originator_version = s.originator_version"
        )
        if clauses:
            statement += " WHERE " + " AND ".join(clauses)
        statement += f" ORDER BY s.{self.position_column}"
        if limit is not None:
            statement += " LIMIT ?"
            params.append(limit)
        with self.transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        return [self.positioned(row) for row in rows]

    def count(self, where: EventFilter = EventFilter()) -> int:
        """How many events match `where`."""
        clauses, params = where.clauses()
        statement = f"SELECT COUNT(*) AS n FROM {self.qualified('event_index')}"
        if clauses:
            statement += " WHERE " + " AND ".join(clauses)
        with self.transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            return int(cursor.fetchone()["n"])

    def streams_in_order(self, up_to: int, page: int = 5000) -> Iterator[list[PositionedEvent]]:
        """Every stream's stored events (positions up to `up_to`), one stream at a time,
        in version order: keyset pages over the (stream id, version) primary key."""
        table = self.qualified(self.events_table_name)
        after: tuple[Any, int] | None = None
        current: list[PositionedEvent] = []
        while True:
            statement = (
                f"SELECT {self.position_column} AS event_position, originator_id,"
                f" originator_version, topic, state FROM {table}"
                f" WHERE {self.position_column} <= ?"
            )
            params: list[Any] = [up_to]
            if after is not None:
                statement += " AND (originator_id, originator_version) > (?, ?)"
                params.extend(after)
            statement += " ORDER BY originator_id, originator_version LIMIT ?"
            params.append(page)
            with self.transaction(commit=False) as cursor:
                cursor.execute(statement, params)
                rows = cursor.fetchall()
            if not rows:
                break
            for row in rows:
                positioned = self.positioned(row)
                if current and current[0].stored.originator_id != positioned.stored.originator_id:
                    yield current
                    current = []
                current.append(positioned)
            last = rows[-1]
            after = (last["originator_id"], int(last["originator_version"]))
        if current:
            yield current

    # For verification: the store read as it is, without trusting it.

    def stream_ids(self) -> list[UUID]:
        """Every stream id found in the events table or in the index written with it."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT originator_id FROM {self.qualified(self.events_table_name)}"
                f" UNION SELECT originator_id FROM {self.qualified('event_index')}"
            )
            ids = {self.id_value(row["originator_id"]) for row in cursor.fetchall()}
        return sorted(ids)

    def stored_stream(self, originator_id: UUID) -> list[PositionedEvent]:
        """One stream's stored events, in version order, with their positions."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT {self.position_column} AS event_position, originator_id,"
                " originator_version, topic, state"
                f" FROM {self.qualified(self.events_table_name)}"
                " WHERE originator_id = ? ORDER BY originator_version",
                (self.id_param(originator_id),),
            )
            rows = cursor.fetchall()
        return [self.positioned(row) for row in rows]

    def indexed_stream(self, originator_id: UUID) -> list[IndexRow]:
        """What the index, written in the same transactions, says the stream holds."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.qualified('event_index')}"
                " WHERE originator_id = ? ORDER BY originator_version",
                (self.id_param(originator_id),),
            )
            rows = cursor.fetchall()
        return [
            IndexRow(
                originator_id,
                int(row["originator_version"]),
                UUID(row["event_id"]),
                row["stream"],
                row["authority"],
                row["country"],
                row["commodity"],
                row["type"],
            )
            for row in rows
        ]

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.transaction(commit=False) as cursor:
            cursor.execute("SELECT 1 AS ok")
            cursor.fetchone()


class SQLiteSanctionsRecorder(SanctionsRecorderMixin, SQLiteApplicationRecorder):
    dialect: Dialect = "sqlite"
    position_column = "rowid"

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + self.side_table_statements("TEXT")

    def qualified(self, table: str) -> str:
        return table

    def id_param(self, value: UUID) -> Any:
        return value.hex

    def id_value(self, value: Any) -> UUID:
        return UUID(value)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        self.write_side_rows(Cursor(c, "sqlite"), kwargs)
        return notification_ids


class PostgresSanctionsRecorder(SanctionsRecorderMixin, PostgresApplicationRecorder):
    dialect: Dialect = "postgres"
    position_column = "notification_id"

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.sql_create_statements.extend(
            Composed([SQL(statement)]) for statement in self.side_table_statements("uuid")
        )

    def qualified(self, table: str) -> str:
        return Identifier(self.datastore.schema, table).as_string()

    def id_param(self, value: UUID) -> Any:
        return value

    def id_value(self, value: Any) -> UUID:
        return value if isinstance(value, UUID) else UUID(str(value))

    def _fetch_ids_after_insert_events(
        self,
        curs: psycopg.Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        # After the events, so inside the table lock: writing the key before it
        # could deadlock two requests that share an Idempotency-Key.
        notification_ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        with curs.connection.pipeline():  # syncs on exit: a conflict raises here
            self.write_side_rows(Cursor(curs, "postgres"), kwargs)
        return notification_ids


def environment_for(database_url: str) -> dict[str, str]:
    """The library's configuration for a `sqlite:///…` or `postgresql://…` URL."""
    parsed = urlparse(database_url)
    scheme = parsed.scheme.split("+")[0]
    if scheme == "sqlite":
        path = database_url.split("://", 1)[1]
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise InvalidInput("SANCTIONS_DATABASE_URL", "sqlite URL names no file")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "domain.persistence:SQLiteSanctionsRecorder",
        }
    if scheme in ("postgresql", "postgres"):
        query = parse_qs(parsed.query)
        schema = query.get("schema", [""])[0]
        ensure_postgres_schema(database_url, schema)
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
            "APPLICATION_RECORDER_TOPIC": "domain.persistence:PostgresSanctionsRecorder",
        }
    raise InvalidInput(
        "SANCTIONS_DATABASE_URL",
        f"unsupported database URL {database_url!r}: use sqlite:///… or postgresql://…",
    )


def postgres_conninfo(database_url: str) -> str:
    """A libpq connection string for the URL, without our own query parameters."""
    parsed = urlparse(database_url)
    return parsed._replace(scheme="postgresql", query="").geturl()


def ensure_postgres_schema(database_url: str, schema: str) -> None:
    if not schema:
        return
    with psycopg.connect(postgres_conninfo(database_url), autocommit=True) as conn:
        conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))


__all__ = [
    "DEFAULT_DATABASE_URL",
    "EventFilter",
    "IdempotencyRecord",
    "IndexRow",
    "PositionedEvent",
    "PostgresSanctionsRecorder",
    "SQLiteDatastore",
    "SQLiteSanctionsRecorder",
    "environment_for",
]
