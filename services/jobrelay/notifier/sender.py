"""One HTTP attempt: POST the signed body to the address the SSRF guard approved, never elsewhere.

The request goes to the checked IP address itself (the URL's host is kept in the Host header and
as the TLS server name, so virtual hosting and certificate checks work as usual): a DNS answer
that changes between the check and the connection (DNS rebinding) cannot redirect it. Redirects
are never followed; the whole attempt is bounded by one timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

__all__ = ["Answer", "post_pinned"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Answer:
    """What the receiver answered: a status (None when there was no answer) and why it failed."""

    status: int | None
    retry_after: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer: delivered."""
        return self.status is not None and 200 <= self.status < 300


def _pinned(url: httpx.URL, address: IPAddress) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The URL with the address as host, the Host header, and the TLS server name extension."""
    host_header = url.netloc.decode()
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return url.copy_with(host=str(address)), {"host": host_header}, extensions


async def _post(
    client: httpx.AsyncClient, url: str, address: IPAddress, headers: Mapping[str, str], body: bytes, timeout: float
) -> Answer:
    target, host, extensions = _pinned(httpx.URL(url), address)
    request = client.build_request(
        "POST", target, content=body, headers={**headers, **host}, extensions=extensions, timeout=timeout
    )
    async with asyncio.timeout(timeout):
        response = await client.send(request, stream=True, follow_redirects=False)
        await response.aclose()  # the body is not needed: only the status counts
    return Answer(response.status_code, response.headers.get("retry-after"))


async def post_pinned(
    client: httpx.AsyncClient,
    url: str,
    addresses: Sequence[IPAddress],
    headers: Mapping[str, str],
    body: bytes,
    timeout: float,
) -> Answer:
    """POST to the first of `addresses` that accepts a connection; an Answer either way, never an exception."""
    error = "no address to connect to"
    for address in addresses:
        try:
            return await _post(client, url, address, headers, body, timeout)
        except httpx.ConnectError as exc:  # try the next address the name resolved to
            error = f"connection to {address} failed: {exc or type(exc).__name__}"
        except (TimeoutError, httpx.TimeoutException):
            return Answer(None, error=f"no answer within {timeout:g}s")
        except httpx.HTTPError as exc:
            return Answer(None, error=f"{type(exc).__name__}: {exc}")
    return Answer(None, error=error)
