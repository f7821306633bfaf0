"""The HTTP attempt connects to the address the SSRF guard checked, whatever DNS says later."""

from __future__ import annotations

import ipaddress

import httpx

from jobrelay.notifier.sender import post_pinned
from tests.integration.notifier.receiver import HANG, Receiver

LOOPBACK = ipaddress.ip_address("127.0.0.1")


async def test_the_request_goes_to_the_checked_address_with_the_urls_host_header(receiver: Receiver) -> None:
    # hooks.invalid never resolves: the request can only reach the receiver through the pinned address.
    url = f"http://hooks.invalid:{receiver.port}/pinned?x=1"
    async with httpx.AsyncClient(trust_env=False) as client:
        answer = await post_pinned(client, url, [ipaddress.ip_address("::1"), LOOPBACK], {"a": "b"}, b"{}", 5.0)
    (got,) = receiver.at("/pinned")
    assert answer.status == 200 and answer.ok
    assert got.headers["host"] == f"hooks.invalid:{receiver.port}", "virtual hosting keeps working"


async def test_no_answer_within_the_timeout_is_an_answer_without_status(receiver: Receiver) -> None:
    receiver.scripts["/hang"] = [HANG]
    async with httpx.AsyncClient(trust_env=False) as client:
        answer = await post_pinned(client, f"{receiver.base}/hang", [LOOPBACK], {}, b"{}", 0.3)
    assert (answer.status, answer.error, answer.ok) == (None, "no answer within 0.3s", False)
