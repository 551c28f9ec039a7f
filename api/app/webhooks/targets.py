"""Which URLs webhooks may be sent to: `SANCTIONS_WEBHOOK_ALLOW_HOSTS`, checked on the
address as well as the name.

An entry is a host name (`hooks.example.com`, or `*.example.com` for its subdomains),
an IP address or a CIDR range. A URL is allowed when it is http(s) without user
information, its host is a listed name (or an address inside a listed address or range),
and **every** address the name resolves to is allowed: inside a listed address or range,
or else globally routable. A private, loopback, link-local or reserved address therefore
needs an address or range entry of its own; a name entry alone never reaches inside the
network. The sender connects to the address checked here, so a second DNS answer cannot
send it elsewhere (no rebinding), and it follows no redirects.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]


class TargetRefused(Exception):
    """The URL may not be a webhook target; the message says why, in words."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the address), and what to ask for there."""

    scheme: str
    host: str
    port: int
    address: str
    path: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (TCP), in the resolver's order."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AllowList:
    """The parsed `SANCTIONS_WEBHOOK_ALLOW_HOSTS`; empty allows nothing."""

    def __init__(self, entries: str, resolver: Resolver = resolve) -> None:
        self.names: set[str] = set()
        self.suffixes: set[str] = set()
        self.networks: list[Network] = []
        self.resolver = resolver
        for raw in entries.split(","):
            entry = raw.strip().lower().rstrip(".")
            if entry:
                self._add(entry)

    def _add(self, entry: str) -> None:
        if "/" in entry:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"webhook allow-list entry {entry!r} is not a CIDR range"
                ) from None
        elif (address := _address(entry)) is not None:
            self.networks.append(ipaddress.ip_network(address))
        elif entry.startswith("*."):
            self.suffixes.add(entry[1:])
        else:
            self.names.add(entry)

    def __bool__(self) -> bool:
        return bool(self.names or self.suffixes or self.networks)

    def listed_address(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def listed_name(self, host: str) -> bool:
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def check(self, url: str) -> Target:
        """The target to connect to; TargetRefused saying why it is not allowed."""
        if not self:
            raise TargetRefused(
                "no webhook targets are allowed: SANCTIONS_WEBHOOK_ALLOW_HOSTS is empty"
            )
        parts = _split(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        literal = _address(host)
        if literal is not None:
            if not self.listed_address(literal):
                raise TargetRefused(f"{host} is not in SANCTIONS_WEBHOOK_ALLOW_HOSTS")
            addresses = [str(literal)]
        else:
            if not self.listed_name(host):
                raise TargetRefused(f"{host} is not in SANCTIONS_WEBHOOK_ALLOW_HOSTS")
            addresses = self._resolved(host, port)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return Target(parts.scheme, host, port, addresses[0], path)

    def _resolved(self, host: str, port: int) -> list[str]:
        try:
            found = list(self.resolver(host, port))
        except (OSError, UnicodeError) as error:
            raise TargetRefused(f"{host} does not resolve ({error})") from None
        if not found:
            raise TargetRefused(f"{host} does not resolve")
        for text in found:
            address = _address(text)
            if address is None:
                raise TargetRefused(f"{host} resolves to {text}, which is not an IP address")
            if not (self.listed_address(address) or address.is_global):
                raise TargetRefused(
                    f"{host} resolves to {address}, which is not a public address; only an "
                    "address or CIDR entry in SANCTIONS_WEBHOOK_ALLOW_HOSTS allows it"
                )
        return found


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port out of range
    except ValueError as error:
        raise TargetRefused(f"not a usable URL ({error})") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not carry a user name or password")
    if not parts.hostname:
        raise TargetRefused("must name a host")
    return parts
