"""SSRF-safe callback URLs: checked when a job is submitted and again before every delivery.

A callback URL must be https (http only when allowed), carry no credentials, and every address
its host resolves to must be globally routable: no loopback, private, link-local (cloud metadata
lives at 169.254.169.254 and fd00:ec2::254), shared, multicast, reserved or unspecified
addresses. An IPv6 address that carries an IPv4 one — mapped (`::ffff:a.b.c.d`), translated
(`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`),
Teredo — is judged by the IPv4 address inside too, which Python's `ipaddress` alone would call
global; the NAT64 local-use prefix (`64:ff9b:1::/48`) is refused whole. Operators allow-list
exceptions by network (`127.0.0.1/32`) or host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = [
    "UnresolvableHostError",
    "UnsafeURLError",
    "UrlPolicy",
    "check_url",
    "check_url_syntax",
    "embedded_ipv4",
    "forbidden_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeURLError(ValueError):
    """The URL may not be called: says why, in words a client can act on."""


class UnresolvableHostError(UnsafeURLError):
    """The host name did not resolve: possibly a passing DNS failure, unlike the other refusals."""


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """What callback URLs may point at."""

    allow_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = field(default=())
    max_length: int = 2048

    @classmethod
    def from_lists(
        cls,
        *,
        allow_http: bool = False,
        hosts: Iterable[str] = (),
        networks: Iterable[str] = (),
        max_length: int = 2048,
    ) -> UrlPolicy:
        """Build a policy from settings-style strings (`"127.0.0.1/32"`, `"hooks.internal"`)."""
        nets = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip())
        return cls(allow_http, frozenset(h.strip().lower() for h in hosts if h.strip()), nets, max_length)

    def allows_address(self, address: IPAddress) -> bool:
        """Whether `address` is allowed: public, or inside an allow-listed network."""
        return any(address in net for net in self.allowed_networks) or not forbidden_address(address)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the low 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local use, the embedding varies
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible (:: and ::1 aside)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, translated, compatible, NAT64, 6to4, Teredo)."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64 or address in _TRANSLATED or (address in _COMPATIBLE and int(address) > 1):
        found.append(low)
    return found


def forbidden_address(address: IPAddress) -> bool:
    """Whether an address is not globally routable (or is multicast), or carries an IPv4 address that is not."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return True
        if any(forbidden_address(inner) for inner in embedded_ipv4(address)):
            return True
    return not address.is_global or address.is_multicast or address.is_unspecified


def check_url_syntax(url: str, policy: UrlPolicy) -> tuple[str, int]:
    """Check scheme, credentials, host and length; return (host, port) to resolve."""
    if len(url) > policy.max_length:
        raise UnsafeURLError(f"URL longer than {policy.max_length} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"not a valid URL: {exc}") from exc
    schemes = {"https", "http"} if policy.allow_http else {"https"}
    if parts.scheme not in schemes:
        raise UnsafeURLError(f"scheme must be {' or '.join(sorted(schemes))}, not {parts.scheme or 'missing'!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError("URL must not carry credentials (user:password@)")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeURLError("URL has no host")
    return host, port or (443 if parts.scheme == "https" else 80)


async def check_url(url: str, policy: UrlPolicy) -> list[IPAddress]:
    """Check `url` fully, resolving its host; returns the allowed addresses to connect to."""
    host, port = check_url_syntax(url, policy)
    if host in policy.allowed_hosts:
        return await _resolve(host, port)
    addresses = await _resolve(host, port)
    for address in addresses:
        if not policy.allows_address(address):
            raise UnsafeURLError(f"host {host} resolves to {address}, which is not a public address")
    return addresses


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        return [literal]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHostError(f"host {host} does not resolve") from exc
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
