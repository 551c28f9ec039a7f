"""A client that hangs up before it is answered is counted and logged as what it is: a
disconnect (status 499, nginx's "client closed request"), never a 500 that was not sent.

Against a real server (uvicorn on a free port), from a raw socket: a POST that declares
1,000 bytes of body, sends 10, and closes.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from tests.conftest import WRITER

pytestmark = pytest.mark.e2e


def hang_up_mid_body(base_url: str) -> None:
    where = urlsplit(base_url)
    assert where.hostname is not None and where.port is not None
    head = (
        "POST /v1/events HTTP/1.1\r\n"
        f"Host: {where.hostname}:{where.port}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 1000\r\n"
        f"Authorization: {WRITER['Authorization']}\r\n"
        "\r\n"
    )
    with socket.create_connection((where.hostname, where.port), timeout=5) as conn:
        conn.sendall(head.encode() + b'{"type": "')  # 10 of the 1,000 bytes
        time.sleep(0.2)  # the server has read the head and waits for the rest


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "sanctions.requests"
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_client_hanging_up_mid_body_is_a_disconnect_not_a_500(
    live_server: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sanctions.requests")
    base_url = live_server()
    hang_up_mid_body(base_url)
    deadline = time.monotonic() + 10
    while not any(line["method"] == "POST" for line in request_lines(caplog)):
        assert time.monotonic() < deadline, "the hung-up request was never logged"
        time.sleep(0.05)

    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    requests = [line for line in metrics.splitlines() if line.startswith("sanctions_http_")]
    assert not [line for line in requests if 'status="500"' in line], "\n".join(requests)
    assert re.search(
        r'^sanctions_http_requests_total\{method="POST",route="/v1/events",status="499"\} 1\.0$',
        metrics,
        re.MULTILINE,
    ), "\n".join(requests)

    (line,) = [line for line in request_lines(caplog) if line["method"] == "POST"]
    assert line["status"] == 499
    assert line["route"] == "/v1/events"
    assert line["outcome"] == "client disconnected before the answer"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
