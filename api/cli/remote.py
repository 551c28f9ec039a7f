"""The reading commands over HTTP: `sanctions --url http://HOST:PORT status …` asks a
running server's REST API instead of opening a database, and parses its JSON into the
very models the service returns, so the output is the same either way."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from api.schemas.answers import ReplayOut, ReplayStepOut, StatusOut, TimelineOut, VerifyOut
from api.schemas.changes import DiffOut, ExpiringOut, ScreenOut
from api.schemas.queries import (
    DiffQuery,
    ExpiringQuery,
    Question,
    ReceiptQuery,
    ReplayQuery,
    ScreenQuery,
    StatusQuery,
    TimelineQuery,
)
from api.schemas.receipts import EnvelopeOut

Answer = TypeVar("Answer", bound=BaseModel)


class RemoteError(Exception):
    """The server could not answer: unreachable or 5xx (exit 1), or it refused the
    question, 4xx (exit 2); `fields` lists each invalid input it named."""

    def __init__(
        self, message: str, exit_code: int, fields: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.fields = fields or []


class Remote:
    """A sanctions-timeline server, asked the questions `api.app.service.Service` answers."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Remote:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.client.close()

    def status(self, query: StatusQuery) -> StatusOut:
        return self.ask(query, StatusOut)

    def timeline(self, query: TimelineQuery) -> TimelineOut:
        return self.ask(query, TimelineOut)

    def replay(self, query: ReplayQuery) -> Iterator[ReplayStepOut]:
        return iter(self.ask(query, ReplayOut).steps)

    def verify(self) -> VerifyOut:
        return self.get("/v1/audit/verify", VerifyOut)

    def diff(self, query: DiffQuery) -> DiffOut:
        return self.ask(query, DiffOut)

    def screen(self, query: ScreenQuery) -> ScreenOut:
        return self.ask(query, ScreenOut)

    def expiring(self, query: ExpiringQuery) -> ExpiringOut:
        return self.ask(query, ExpiringOut)

    def receipt(self, query: ReceiptQuery) -> EnvelopeOut:
        return self.ask(query, EnvelopeOut)

    def ask(self, query: Question, model: type[Answer]) -> Answer:
        """The server's answer to `query`, sent as the query string of its path."""
        return self.get(query.PATH, model, **query.params())

    def get(self, path: str, model: type[Answer], **query: str | None) -> Answer:
        """GET `path` with the given (non-None) query parameters, parsed as `model`."""
        params = {name: value for name, value in query.items() if value is not None}
        try:
            response = self.client.get(path, params=params)
        except httpx.HTTPError as error:
            raise RemoteError(f"cannot reach {self.base_url}: {error}", 1) from None
        if response.status_code >= 400:
            raise self.problem(response)
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise RemoteError(
                f"{self.base_url}{path} answered {response.status_code} with something other "
                "than a sanctions-timeline answer; is --url a sanctions-timeline server?",
                1,
            ) from None

    def problem(self, response: httpx.Response) -> RemoteError:
        """The server's RFC 9457 problem document as an error: 4xx → exit 2, 5xx → exit 1."""
        status = response.status_code
        code = 2 if status < 500 else 1
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "detail" not in body:
            return RemoteError(f"{self.base_url} answered {status} {response.reason_phrase}", code)
        listed = body.get("errors")
        fields = [
            (str(each.get("field", "")), str(each.get("message", "")))
            for each in (listed if isinstance(listed, list) else [])
            if isinstance(each, dict)
        ]
        title = body.get("title") or response.reason_phrase
        message = f"{self.base_url} answered {status} {title}: {body['detail']}"
        if status == 401:
            message += " (give a token in SANCTIONS_TOKEN)"
        elif status == 403:
            message += " (the token in SANCTIONS_TOKEN has too small a role)"
        return RemoteError(message, code, fields)
