"""The PostgreSQL event store: the library's recorder, writing side tables in its transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import DatabaseError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from psycopg import Connection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.errors import InvalidSchemaName, UndefinedFunction, UndefinedTable
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier
from psycopg_pool import PoolTimeout

from domain.hashing import parse_timestamp
from domain.store.signals import CHANNELS, Channel, Signals
from domain.store.sql import JUST_AFTER, Cursor, Dialect, SanctionsRecorderMixin
from domain.store.writes import WriteExtras


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

    def is_missing_tables(self, error: Exception) -> bool:
        missing = (UndefinedTable, InvalidSchemaName, UndefinedFunction)
        return any(isinstance(cause, missing) for cause in causes(error))

    def is_connection_lost(self, error: Exception) -> bool:
        return connection_lost(error)

    def setup(self) -> None:
        # The types and tables are new objects: forget what pooled connections knew of
        # the old ones (composite type adapters, prepared statements).
        self.datastore.psycopg_type_adapters.clear()
        self.datastore.psycopg_python_types.clear()
        self.datastore.pool.drain()
        super().setup()
        self.datastore.register_type_adapters()

    def write_lock_key(self) -> str:
        return f"sanctions-write:{self.datastore.schema}"

    def serial_plans(self, cursor: Cursor) -> None:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")

    def horizon(self) -> datetime | None:
        return self.replication_point()[0]

    def replication_point(self) -> tuple[datetime, str | None]:
        """The horizon, and the WAL written so far (None on a standby), in one look.

        On a primary, with no write under way, any later write is recorded after now;
        else the last recorded event is the latest moment settled. On a standby (which
        knows nothing of the primary's locks) it is the last event replayed: writes are
        committed one at a time, so every event not replayed yet was recorded after it.
        A standby that has replayed the WAL up to the position answered here holds
        every event recorded by the horizon answered with it."""
        with self.autocommit() as cursor:  # the shared lock lasts as long as the statement
            cursor.execute(
                "SELECT CASE WHEN pg_is_in_recovery() THEN false"
                " ELSE pg_try_advisory_xact_lock_shared(hashtext(?)) END AS quiet,"
                f" clock_timestamp() AS now, (SELECT last_recorded_at FROM"
                f" {self.qualified('log_clock')} WHERE id = 1) AS last,"
                " CASE WHEN pg_is_in_recovery() THEN NULL"
                " ELSE pg_current_wal_lsn()::text END AS wal",
                (self.write_lock_key(),),
            )
            row = cursor.fetchone()
        if row["quiet"]:  # no write under way: any later one is recorded after now
            return row["now"] - JUST_AFTER, row["wal"]
        if row["last"] is None:
            return datetime.min.replace(tzinfo=UTC), row["wal"]
        return parse_timestamp(row["last"]), row["wal"]

    def replay_behind(self, wal: str) -> int | None:
        """How many bytes of WAL up to `wal` (a primary's position) this server has yet
        to replay: 0 when it has replayed them all or is a primary itself, None when it
        is a standby that cannot say (not streaming yet)."""
        with self.autocommit() as cursor:
            cursor.execute(
                "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0"
                " ELSE greatest(0, pg_wal_lsn_diff(?::pg_lsn, pg_last_wal_replay_lsn()))"
                " END AS behind",
                (wal,),
            )
            row = cursor.fetchone()
        return None if row["behind"] is None else int(row["behind"])

    def open_signals(self) -> Signals:
        kwargs = self.datastore.pool.kwargs  # the pool's own connection settings, whole
        conninfo = make_conninfo(
            **{key: value for key, value in kwargs.items() if value and key != "row_factory"}
        )
        return ListenNotify(conninfo, self.signal_names())

    def signal_names(self) -> dict[Channel, str]:
        """The NOTIFY channels: the library's own for recorded events, and one each (per
        schema) for the read models' progress and for changes to the stored tokens."""
        return {
            "events": self.channel_name,
            "projected": projected_channel(self.datastore.schema),
            "tokens": f"{self.datastore.schema or 'public'}_tokens",
        }

    def id_param(self, value: UUID) -> Any:
        return value

    def id_value(self, value: Any) -> UUID:
        return value if isinstance(value, UUID) else UUID(str(value))

    def _insert_stored_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        # Held to the commit: a reader that can take it shared knows no write is under way.
        curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.write_lock_key(),))
        # The database's clock, one for every process and host that writes here.
        now = curs.execute("SELECT clock_timestamp() AS now").fetchone()
        assert now is not None
        # Before anything is written: the library commits this transaction even when
        # this raises (it re-raises after leaving its pipeline), so it must stay empty.
        cursor, extras = Cursor(curs, "postgres"), WriteExtras.given(kwargs)
        self.writes.check_versions(cursor, extras)
        stamped = self.writes.stamped(cursor, now["now"], stored_events, extras)
        super()._insert_stored_events(curs, stamped, **kwargs)

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
            self.writes.side_rows(Cursor(curs, "postgres"), WriteExtras.given(kwargs))
        return notification_ids


@contextmanager
def advisory_lock(conninfo: str, key: str) -> Iterator[None]:
    """Hold a session-level advisory lock on `key` (on a connection of its own) inside
    the block: processes that start at once create the schema one after another."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


def projected_channel(schema: str) -> str:
    """The NOTIFY channel on which the read models of a schema announce their progress."""
    return f"{schema or 'public'}_projected"


def ensure_schema(conninfo: str, schema: str) -> None:
    """Create the PostgreSQL schema the store lives in, if it is not there yet."""
    if not schema:
        return
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))


class ListenNotify(Signals):
    """Signals from every process on the database, through LISTEN on one connection of
    its own, in a thread started by the first waiter. While that connection is down,
    waiters time out and poll, and it is opened again."""

    listening = True

    def __init__(self, conninfo: str, names: dict[Channel, str]) -> None:
        super().__init__()
        self.conninfo = conninfo
        self.names = names
        self._channels = {name: channel for channel, name in names.items()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def wait(self, channel: Channel, timeout: float, since: int | None = None) -> bool:
        self.start()
        return super().wait(channel, timeout, since)

    def seen(self, channel: Channel) -> int:
        self.start()
        return super().seen(channel)

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._listen, name="listen", daemon=True)
                self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    for name in self.names.values():
                        conn.execute(SQL("LISTEN {}").format(Identifier(name)))
                    for channel in CHANNELS:  # what was missed while not listening
                        self.wake(channel)
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=1.0):
                            self.wake(self._channels[notice.channel])
            except psycopg.Error:
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class PoolExhausted(DatabaseError):
    """No working connection came from the pool within the connect timeout: the database
    is away, or every connection is busy. A `DatabaseError` but not an `OperationalError`,
    so the library does not retry it (ten more waits of the same length, half a minute):
    the request fails at once, and a write's outcome is then looked up as for any other
    failure."""


class EveryConnectionBroken(OperationalError):
    """Every connection the pool handed out in a row was found broken."""


LOST_STATES = ("57P01", "57P02", "57P03")
"""The server ended the session: terminated (`pg_terminate_backend`), crashed, starting."""


def connection_lost(error: BaseException) -> bool:
    """Whether `error`, or what caused it, says the connection it ran on died (the server
    closed it, or ended its backend) rather than that the statement failed: the work can
    be tried again on a fresh connection. Not a pool that gave no connection in time (the
    database is away: trying again would only wait as long again)."""
    for cause in causes(error):
        if isinstance(cause, (PoolTimeout, PoolExhausted)):
            return False
        if isinstance(cause, EveryConnectionBroken | psycopg.InterfaceError):
            return True
        if isinstance(cause, psycopg.OperationalError):
            state = cause.sqlstate
            return state is None or state.startswith("08") or state in LOST_STATES
    return False


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what caused it, and so on down the chain of `__cause__`."""
    cause: BaseException | None = error
    while cause is not None:
        yield cause
        cause = cause.__cause__


class _Dead(Exception):
    """A pooled connection found broken before use (internal to `FailFastDatastore`)."""


class FailFastDatastore(PostgresDatastore):
    """The library's datastore, failing fast while connections are killed or the database
    is away. Each connection taken from the pool is tried first (an empty query, as the
    pool's own pre-ping does) and a broken one is dropped and the next taken at once: the
    pool's own check would sleep a second or more after each broken connection, which is
    what made writes crawl while connections were being killed."""

    @contextmanager
    def get_connection(self) -> Iterator[Connection[DictRow]]:
        for _ in range(self.pool.max_size + 1):
            try:
                with super().get_connection() as conn:
                    try:
                        conn.execute("")
                    except psycopg.Error:
                        raise _Dead from None  # the pool sees it broken and replaces it
                    yield conn
                    return
            except _Dead:
                continue
            except OperationalError as error:
                if isinstance(error.__cause__, PoolTimeout):
                    raise PoolExhausted(str(error)) from error.__cause__
                raise
        raise EveryConnectionBroken("every pooled connection was found broken")  # retried


class SanctionsPostgresFactory(PostgresFactory):
    """The library's PostgreSQL persistence, with a datastore that fails fast."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        # The library builds its datastore in this constructor, with no hook to choose its
        # class; FailFastDatastore adds no state, only a different get_connection.
        self.datastore.__class__ = FailFastDatastore
        # libpq's other settings from the URL (target_session_attrs, sslmode, …), which the
        # library has no setting for: every pooled connection opens with them.
        options = self.env.get("SANCTIONS_POSTGRES_OPTIONS") or ""
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict)  # the library gives the pool a dict
        kwargs.update(conninfo_to_dict(options))
        # A connection attempt that fails (the database away, out of connection slots, or
        # the new backend killed) is tried once more at once and then given up, its place
        # opened again when a request next needs one: with the pool's default (five
        # minutes of exponential backoff) a pool left waiting out its timers answered
        # requests 503 for seconds after the database was back.
        self.datastore.pool.reconnect_timeout = 0.0
