"""PostgreSQL URLs as libpq reads them: several hosts (`h1:5433,h2:5434`) and libpq's own
settings (`target_session_attrs`, …) reach every connection the service opens, and the
service's own parameters (`schema`, `pool_size`, `max_overflow`) are set apart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app.bootstrap import build_service
from api.app.settings import Settings
from api.http.app import create_app
from domain.store.config import DatabaseURLError, database_location, environment_for
from tests.conftest import (
    POSTGRES_URL,
    TOKENS,
    US_POTASH_IMPOSED,
    WRITER,
    drop_schema,
    free_port,
    run_cli,
)

pytestmark = pytest.mark.postgres

SERVER = urlparse(POSTGRES_URL)


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    drop_schema(name)


def url_with(hosts: str, query: str) -> str:
    """The test server's URL with other hosts and query."""
    return f"postgresql://{SERVER.username}@{hosts}{SERVER.path}?{query}"


def test_a_multi_host_url_runs_the_service_on_the_first_server_that_answers(schema: str) -> None:
    # Nothing listens on the first host; libpq moves on to the second, which is writable.
    hosts = f"127.0.0.1:{free_port()},{SERVER.hostname}:{SERVER.port}"
    url = url_with(hosts, f"target_session_attrs=read-write&schema={schema}&pool_size=2")
    seeded = run_cli(url, "seed", "--create")
    assert seeded.returncode == 0, seeded.stderr
    assert f"@{hosts}/" in seeded.stderr  # "creating a new database at", every host named
    shown = run_cli(url, "status", "BY", "potash")
    assert shown.returncode == 0 and "US/BY/potash" in shown.stdout, shown.stderr

    svc = build_service(Settings(database_url=url, api_tokens=TOKENS))
    try:
        with TestClient(create_app(svc)) as client:
            body = {**US_POTASH_IMPOSED, "country": "TJ", "commodity": "potash"}
            written = client.post("/v1/events", json=body, headers=WRITER)
            assert written.status_code == 201, written.text
            read = client.get("/v1/status", params={"country": "TJ", "commodity": "potash"})
            assert [row["status"] for row in read.json()["results"]] == ["active"]
    finally:
        svc.log.close()
    # It was written where the single-host URL reads.
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        found = conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {}.sanctionstimeline_events").format(
                psycopg.sql.Identifier(schema)
            )
        ).fetchone()
    assert found is not None and found[0] > 0


def test_libpq_settings_reach_every_connection(schema: str) -> None:
    # The one server here is a primary: a URL asking for a standby must not be served by
    # it. Had target_session_attrs been dropped anywhere, the command would succeed.
    url = url_with(f"{SERVER.hostname}:{SERVER.port}", f"schema={schema}")
    assert run_cli(url, "seed", "--create").returncode == 0
    standby_only = url_with(
        f"{SERVER.hostname}:{SERVER.port}", f"schema={schema}&target_session_attrs=standby"
    )
    refused = run_cli(standby_only, "status", "BY", "potash")
    assert refused.returncode != 0
    assert "not in hot standby mode" in refused.stdout + refused.stderr

    svc = build_service(
        Settings(
            database_url=url_with(
                f"{SERVER.hostname}:{SERVER.port}",
                f"schema={schema}&target_session_attrs=read-write&application_name=sanctions-test",
            ),
            api_tokens=TOKENS,
        )
    )
    try:
        pool = svc.log.factory.datastore.pool  # type: ignore[attr-defined]
        assert pool.kwargs["target_session_attrs"] == "read-write"
        assert "target_session_attrs=read-write" in svc.log.signals.conninfo  # type: ignore[attr-defined]
        with pool.connection() as conn:  # what the server was told by this pool's connection
            row = conn.execute("SELECT current_setting('application_name') AS name").fetchone()
        assert row is not None and row["name"] == "sanctions-test"
    finally:
        svc.log.close()


def test_the_database_is_named_with_every_host_and_never_its_password() -> None:
    url = "postgresql://u:s3cret@10.0.0.1:5433,[::1]:5434/db?schema=x&password=p4ss"
    shown = database_location(url)
    assert shown == "postgresql://u@10.0.0.1:5433,[::1]:5434/db?schema=x"
    assert "s3cret" not in shown and "p4ss" not in shown
    # libpq's reading: a port given once serves every host; a host without one has 5432.
    assert database_location("postgresql://u@h1,h2/db?port=5433") == (
        "postgresql://u@h1:5433,h2:5433/db?port=5433"
    )
    assert database_location("postgresql://u@h1,h2:5433/db") == "postgresql://u@h1,h2:5433/db"


def test_a_url_libpq_cannot_read_is_a_configuration_error() -> None:
    with pytest.raises(DatabaseURLError, match="no_such_setting"):
        environment_for("postgresql://u@127.0.0.1/db?no_such_setting=1")
