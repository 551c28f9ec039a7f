"""Which URLs webhooks may be sent to: `SANCTIONS_WEBHOOK_ALLOW_HOSTS`, checked on the
address as well as the name.

An entry is a host name (`hooks.example.com`, or `*.example.com` for its subdomains),
an IP address (IPv6 ones bare, `::1`, or in brackets, `[::1]`) or a CIDR range, each
optionally followed by `:port` (`127.0.0.1:8080`, `[::1]:8080`, `10.0.0.0/8:9000`). A URL
is allowed when it is http(s) without user information, its host is a listed name (or an
address inside a listed address or range), its port is 80 or 443 or one that an entry
naming its host lists, and **every** address the name resolves to is allowed: inside a
listed address or range, or else globally routable. A private, loopback or reserved
address therefore needs an address or range entry of its own; a name entry alone never
reaches inside the network. No entry allows port 0, the unspecified or a multicast
address, an IPv6 link-local one, or an IPv6 literal embedding an IPv4 address. The
sender connects to the address checked here, so a second DNS answer cannot send it
elsewhere (no rebinding), and it follows no redirects.
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


STANDARD_PORTS = frozenset({80, 443})
"""The ports a URL may name without an entry listing its port."""


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
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


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


def _host_and_port(entry: str) -> tuple[str, int | None]:
    """An entry's host and its port, if it names one (`[v6]:port` for an IPv6 one)."""
    if entry.startswith("["):
        close = entry.find("]")
        rest = entry[close + 1 :] if close > 0 else "?"
        if close < 0 or (rest and not rest.startswith(":")):
            raise ValueError(
                f"webhook allow-list entry {entry!r} is not [address] or [address]:port"
            )
        host, port = entry[1:close], rest[1:] if rest else None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host, port = entry, None  # a name, an IPv4 address or range, a bare IPv6 one
    if port is None:
        return host, None
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"webhook allow-list entry {entry!r}: {port!r} is not a port (1-65535)")
    return host, int(port)


def _v6_literal(host: str) -> None:
    """Refuse the IPv6 literals that are another address in disguise, or unusable."""
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return
    if address.ipv4_mapped is not None or address.sixtofour is not None or address.teredo:
        raise TargetRefused(
            f"{host} embeds an IPv4 address; write the IPv4 address itself if it is allowed"
        )
    if address.is_link_local:
        raise TargetRefused(f"{host} is a link-local address, which no target may be")


def _never(address: Address) -> str | None:
    """What makes an address no target whatever the list says, or None."""
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    return None


class AllowList:
    """The parsed `SANCTIONS_WEBHOOK_ALLOW_HOSTS`; empty allows nothing."""

    def __init__(self, entries: str, resolver: Resolver = resolve) -> None:
        self.names: dict[str, set[int]] = {}
        """Each listed name, and the ports beyond 80 and 443 listed with it."""
        self.suffixes: dict[str, set[int]] = {}
        self.networks: list[tuple[Network, set[int]]] = []
        self.resolver = resolver
        for raw in entries.split(","):
            entry = raw.strip().lower()
            if entry:
                self._add(entry)

    def _add(self, entry: str) -> None:
        host, port = _host_and_port(entry)
        host = host.rstrip(".")
        ports = set() if port is None else {port}
        if "/" in host:
            try:
                network = ipaddress.ip_network(host, strict=False)
            except ValueError:
                raise ValueError(
                    f"webhook allow-list entry {entry!r} is not a CIDR range"
                ) from None
            self.networks.append((network, ports))
        elif (address := _address(host)) is not None:
            self.networks.append((ipaddress.ip_network(address), ports))
        elif not host or ":" in host:
            raise ValueError(f"webhook allow-list entry {entry!r} is not a host name or address")
        elif host.startswith("*."):
            self.suffixes.setdefault(host[1:], set()).update(ports)
        else:
            self.names.setdefault(host, set()).update(ports)

    def __bool__(self) -> bool:
        return bool(self.names or self.suffixes or self.networks)

    def listed_address(self, address: Address) -> bool:
        return any(address in network for network, _ in self.networks)

    def listed_name(self, host: str) -> bool:
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def address_ports(self, address: Address) -> set[int]:
        """The ports the entries that list `address` add to 80 and 443."""
        return set().union(*(ports for network, ports in self.networks if address in network))

    def name_ports(self, host: str) -> set[int]:
        """The ports the entries that list `host` add to 80 and 443."""
        found = [ports for suffix, ports in self.suffixes.items() if host.endswith(suffix)]
        return set().union(self.names.get(host, set()), *found)

    def check(self, url: str) -> Target:
        """The target to connect to; TargetRefused saying why it is not allowed."""
        if not self:
            raise TargetRefused(
                "no webhook targets are allowed: SANCTIONS_WEBHOOK_ALLOW_HOSTS is empty"
            )
        parts = _split(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        if "%" in host:
            raise TargetRefused(f"{host} carries a zone index, which no target may")
        _v6_literal(host)
        literal = _address(host)
        if literal is not None and (special := _never(literal)) is not None:
            raise TargetRefused(f"{host} is {special}, which no target may be")
        if literal is not None:
            if not self.listed_address(literal):
                raise TargetRefused(f"{host} is not in SANCTIONS_WEBHOOK_ALLOW_HOSTS")
            self._port_allowed(host, port, self.address_ports(literal))
            addresses = [str(literal)]
        else:
            if not self.listed_name(host):
                raise TargetRefused(f"{host} is not in SANCTIONS_WEBHOOK_ALLOW_HOSTS")
            self._port_allowed(host, port, self.name_ports(host))
            addresses = self._resolved(host, port)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return Target(parts.scheme, host, port, addresses[0], path)

    @staticmethod
    def _port_allowed(host: str, port: int, listed: set[int]) -> None:
        if port == 0:
            raise TargetRefused("port 0 is not a port a request can be sent to")
        if port not in STANDARD_PORTS and port not in listed:
            shown = f"[{host}]" if ":" in host else host
            raise TargetRefused(
                f"port {port} is not allowed for {host}: only 80 and 443, unless an entry "
                f"of SANCTIONS_WEBHOOK_ALLOW_HOSTS lists the port ({shown}:{port})"
            )

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
            if (special := _never(address)) is not None:
                raise TargetRefused(f"{host} resolves to {address}, {special}")
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
