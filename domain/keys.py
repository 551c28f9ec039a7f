"""Stream keys: who sanctions (authority), whom (country) and what (commodity)."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pycountry

from domain.catalogue import find_commodity
from domain.errors import InvalidInput
from domain.rules import EventType

BLOCS = {"EU": "European Union", "UN": "United Nations"}

# A fixed namespace so the same stream name always maps to the same aggregate id.
STREAM_NAMESPACE = uuid.UUID("5b3f6c1e-8f0a-4a57-9d1e-2c6a7e0b4d21")


@functools.lru_cache(maxsize=65536)
def stream_id(name: str) -> uuid.UUID:
    """The aggregate id of a stream name (a uuid5: the same name, the same id)."""
    return uuid.uuid5(STREAM_NAMESPACE, name)


@functools.lru_cache(maxsize=1024)
def _country_name(code: str) -> str | None:
    if len(code) != 2 or not code.isalpha():
        return None
    entry = pycountry.countries.get(alpha_2=code)
    return None if entry is None else str(entry.name)


def _suggestion(value: str) -> str:
    """`; did you mean 'BY' (Belarus)?` for a country's name or other code, else ''."""
    text = value.strip()
    if not text:
        return ""
    candidates: list[Any] = []
    try:
        candidates = [pycountry.countries.lookup(text)]  # alpha-3, numeric, names
    except LookupError:
        with contextlib.suppress(LookupError):
            candidates = pycountry.countries.search_fuzzy(text) if len(text) > 3 else []
    if not candidates:
        return ""
    entry = candidates[0]
    return f"; did you mean {entry.alpha_2!r} ({entry.name})?"


def parse_country(value: str, field: str = "country") -> str:
    """An ISO 3166-1 alpha-2 code, upper case; InvalidInput (with a suggestion) if unknown."""
    code = value.strip().upper()
    if _country_name(code) is None:
        raise InvalidInput(
            field, f"{value!r} is not an ISO 3166-1 alpha-2 country code{_suggestion(value)}"
        )
    return code


def parse_authority(value: str) -> str:
    """A sanctioning authority: an ISO 3166-1 alpha-2 country or a bloc (EU, UN)."""
    code = value.strip().upper()
    if code in BLOCS:
        return code
    if _country_name(code) is None:
        raise InvalidInput(
            "authority",
            f"{value!r} is not a sanctioning authority: use an ISO 3166-1 alpha-2 "
            f"country code or one of {', '.join(sorted(BLOCS))}{_suggestion(value)}",
        )
    return code


def parse_commodity(value: str) -> str:
    """A commodity slug from the catalogue; InvalidInput naming close matches."""
    return find_commodity(value).slug


def parse_each(*parsers: tuple[Callable[[str], str], str]) -> list[str]:
    """Each value through its parser; InvalidInput naming every value that fails."""
    parsed: list[str] = []
    errors: list[InvalidInput] = []
    for parse, value in parsers:
        try:
            parsed.append(parse(value))
        except InvalidInput as error:
            errors.append(error)
    InvalidInput.raise_all(errors)
    return parsed


@dataclass(frozen=True, order=True)
class StreamKey:
    """Identifies one sanctions stream, e.g. US/BY/potash."""

    authority: str
    country: str
    commodity: str

    @classmethod
    def parse(cls, authority: str, country: str, commodity: str) -> StreamKey:
        """Validate and normalise the three codes (InvalidInput naming every bad one)."""
        authority, country, commodity = parse_each(
            (parse_authority, authority), (parse_country, country), (parse_commodity, commodity)
        )
        return cls(authority, country, commodity)

    @classmethod
    def from_name(cls, name: str) -> StreamKey:
        """The key of a stream name `AUTHORITY/COUNTRY/commodity` (trusted input)."""
        authority, country, commodity = name.split("/")
        return cls(authority, country, commodity)

    @property
    def name(self) -> str:
        return f"{self.authority}/{self.country}/{self.commodity}"

    @property
    def aggregate_id(self) -> uuid.UUID:
        return stream_id(self.name)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class EventFilter:
    """Which streams (and events) a read is about; every part optional."""

    authority: str | None = None
    country: str | None = None
    commodity: str | None = None
    type: EventType | None = None
    event_id: UUID | None = None

    @classmethod
    def of_stream(cls, key: StreamKey) -> EventFilter:
        return cls(key.authority, key.country, key.commodity)

    @property
    def stream(self) -> str | None:
        """The stream's name when all three keys are given, else None."""
        if self.authority is None or self.country is None or self.commodity is None:
            return None
        return StreamKey(self.authority, self.country, self.commodity).name
