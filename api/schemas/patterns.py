"""The written forms the API takes, as JSON Schema patterns that say exactly what is accepted.

Validation reads codes case-insensitively and ignores the whitespace `str.strip()` removes, so a
pattern such as `^[A-Za-z]{2}$` would promise more (`XX`) and less (` by`) than is accepted. The
patterns here are built from the real codes (pycountry, the commodity catalogue) and spelled with
explicit character classes, so a JSON Schema validator (ECMA-262), Python's `re` and Rust's
`regex` all read them alike. `api.http.params` and `api.schemas.requests` enforce each with
`re.fullmatch` before the service parses the value, so the documented form and the accepted one
are the same.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

import pycountry

from domain.catalogue import CATALOGUE
from domain.keys import BLOCS

SPACE = r"[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""Every character `str.strip()` removes (those for which `str.isspace()` holds)."""
NOT_SPACE = SPACE.replace("[", "[^", 1)


def any_case(text: str) -> str:
    """`text` as a pattern matching it in any mix of upper and lower case."""
    return "".join(
        f"[{c.upper()}{c.lower()}]" if c.isascii() and c.isalpha() else _literal(c) for c in text
    )


def _literal(c: str) -> str:
    # `-` needs no escape outside a class, and ECMA-262's unicode mode refuses `\-` there.
    return c if c.isalnum() or c == "-" else re.escape(c)


def alternatives(words: Iterable[str]) -> str:
    """A group matching any of `words` in any case; two-letter codes grouped by first letter."""
    words = sorted(set(words))
    if all(len(word) == 2 and word.isascii() and word.isalpha() for word in words):
        seconds: dict[str, list[str]] = defaultdict(list)
        for word in words:
            seconds[word[0]].append(word[1])
        parts = [
            any_case(first) + "[" + "".join(c.upper() + c.lower() for c in rest) + "]"
            for first, rest in sorted(seconds.items())
        ]
    else:
        parts = [any_case(word) for word in words]
    return "(?:" + "|".join(parts) + ")"


def padded(fragment: str) -> str:
    """The whole value: `fragment`, with any surrounding whitespace."""
    return f"^{SPACE}*{fragment}{SPACE}*$"


def blank_or(fragment: str) -> str:
    """A query value: blank (the same as absent), or `fragment` with surrounding whitespace."""
    return f"^{SPACE}*(?:{fragment}{SPACE}*)?$"


def exact(fragment: str) -> str:
    return f"^{fragment}$"


COUNTRY_CODES = tuple(sorted(country.alpha_2 for country in pycountry.countries))
AUTHORITY_CODES = tuple(sorted({*COUNTRY_CODES, *BLOCS}))
COMMODITY_SLUGS = tuple(commodity.slug for commodity in CATALOGUE)

COUNTRY = alternatives(COUNTRY_CODES)
HS_CODE = (
    "(?:"
    + "|".join(
        "\\.?".join(prefix) + f"(?:\\.?[0-9]){{0,{10 - len(prefix)}}}"
        for prefix in sorted({p for commodity in CATALOGUE for p in commodity.hs_prefixes})
    )
    + ")"
)
"""An HS code some catalogue commodity covers: one of its prefixes, then up to 10 digits in
all, a dot allowed between any two (`3104.20.50`)."""
AUTHORITY = alternatives(AUTHORITY_CODES)
COMMODITY = alternatives(COMMODITY_SLUGS)

_YEAR = "(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
"""`YYYY-MM-DD`, a day that exists, in years 1 to 9999."""

_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
_HOURS_MINUTES = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
# A `+` sent unencoded in a query string arrives as a space; after an upper-case `T` it is read
# as the `+` it was meant to be.
MOMENT = (
    f"{DATE}(?:T{_TIME}(?:[Zz]|[+\\x20-]{_HOURS_MINUTES})?|t{_TIME}(?:[Zz]|[+-]{_HOURS_MINUTES})?)?"
)
"""An RFC 3339 timestamp (UTC without an offset), or a date meaning 00:00 UTC that day."""

_NONZERO_OFFSET = "(?:00:(?:0[1-9]|[1-5][0-9])|(?:0[1-9]|1[0-9]|2[0-3]):[0-5][0-9])"
MOMENT_AT_THE_EDGE = (
    f"^{SPACE}*(?:0001-01-01[Tt][0-9:.]*[+\\x20]{_NONZERO_OFFSET}"
    f"|9999-12-31[Tt][0-9:.]*-{_NONZERO_OFFSET})"
)
"""Timestamps on the first day with an offset ahead of UTC, or on the last day with one behind:
refused, as some of them fall outside years 1 to 9999 once the offset is applied."""

UUID = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"

_PORT = "(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_TOP_LABEL = "[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_URL_REST = "[A-Za-z0-9._~!$&'()*+,;=:@/?#%-]"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = f"{_OCTET}(?:\\.{_OCTET}){{3}}"
_H16 = "[0-9A-Fa-f]{1,4}"
_LS32 = f"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = (  # RFC 3986's IPv6address, in brackets
    "\\[(?:"
    f"(?:{_H16}:){{6}}{_LS32}"
    f"|::(?:{_H16}:){{5}}{_LS32}"
    f"|(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}"
    f"|(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}"
    f"|(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}"
    f"|(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}"
    f"|(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}"
    f"|(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}"
    f"|(?:(?:{_H16}:){{0,6}}{_H16})?::"
    ")\\]"
)
_HOST = f"(?:(?:{_IPV4}|(?:{_LABEL}\\.)*{_TOP_LABEL})\\.?|{_IPV6})"
HTTP_URL = f"{any_case('http')}[Ss]?://{_HOST}(?::{_PORT})?(?:[/?#]{_URL_REST}*)?"
"""An http(s) URL with a host name, an IPv4 address or an IPv6 one in brackets, written with
RFC 3986 characters only."""


def compiled(pattern: str) -> re.Pattern[str]:
    """The pattern for `re.fullmatch` in Python (its `$` would also take a final newline)."""
    return re.compile(pattern.removeprefix("^").removesuffix("$"))


def at_most(limit: int) -> str:
    """Whole numbers from 0 to `limit` in ASCII digits (leading zeros allowed, up to as many
    digits as `limit` has)."""
    digits = str(limit)
    shorter = f"[0-9]{{1,{len(digits) - 1}}}" if len(digits) > 1 else None
    same_length = [
        digits[:i]
        + (f"[0-{int(d) - 1}]" if int(d) > 1 else "0")
        + f"[0-9]{{{len(digits) - i - 1}}}"
        for i, d in enumerate(digits)
        if int(d) > 0
    ]
    return "(?:" + "|".join(filter(None, [shorter, *same_length, digits])) + ")"
