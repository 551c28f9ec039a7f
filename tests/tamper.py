"""Altering a store behind the service's back, as an insider with database access would."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from api.app.service import Service
from domain.application import SanctionsLog
from domain.keys import StreamKey

Execute = Callable[[str, tuple[Any, ...]], list[Any]]


@contextmanager
def behind_the_back(services: Service) -> Iterator[Execute]:
    """A raw connection to the service's database, not through the service."""
    with behind_the_back_of(services.log) as execute:
        yield execute


@contextmanager
def behind_the_back_of(log: SanctionsLog) -> Iterator[Execute]:
    """A raw connection to the log's database (`%s` placeholders on either)."""
    url = log.database_url
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("sqlite:///", 1)[1])

        def run(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()

        try:
            yield run
            conn.commit()
        finally:
            conn.close()
        return
    schema = url.split("schema=", 1)[1] if "schema=" in url else "public"
    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as pg:
        pg.execute(f'SET search_path TO "{schema}"')

        def run_pg(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
            cursor = pg.execute(sql, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

        yield run_pg


def events_table(services: Service) -> str:
    return services.log.store.events_table_name


def stream_id(services: Service, stream: str) -> Any:
    key = StreamKey.from_name(stream).aggregate_id
    return key.hex if services.log.store.dialect == "sqlite" else key
