"""SSRF guard: what a client sees for each kind of unsafe callback URL."""

from __future__ import annotations

import pytest

from jobrelay.security.urls import UnsafeURLError, UrlPolicy, check_url

DEFAULT = UrlPolicy()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "127.0.0.1"),
        ("https://[::1]/hook", "::1"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("https://10.0.0.1/hook", "10.0.0.1"),
        ("https://192.168.1.10/hook", "192.168.1.10"),
        ("https://100.64.0.1/hook", "100.64.0.1"),
        ("https://[::ffff:127.0.0.1]/hook", "::ffff:7f00:1"),
        ("https://[fd00:ec2::254]/hook", "fd00:ec2::254"),
        # IPv6 forms that carry an IPv4 address `ipaddress` alone would call global (an outside probe's finds)
        ("https://[64:ff9b::169.254.169.254]/", "64:ff9b::a9fe:a9fe"),
        ("https://[64:ff9b::10.0.0.1]/", "64:ff9b::a00:1"),
        ("https://[64:ff9b:1::7f00:1]/", "64:ff9b:1::7f00:1"),
        ("https://[2002:a9fe:a9fe::]/", "2002:a9fe:a9fe::"),
        ("https://[::127.0.0.1]/", "::7f00:1"),
        ("https://[::ffff:0:169.254.169.254]/", "::ffff:0:a9fe:a9fe"),
        ("https://224.0.0.1/hook", "224.0.0.1"),
        ("https://0.0.0.0/hook", "0.0.0.0"),
        ("https://localhost/hook", "localhost resolves to"),
        ("http://93.184.215.14/hook", "scheme must be https"),
        ("ftp://93.184.215.14/", "scheme must be https"),
        ("https://user:pw@93.184.215.14/", "credentials"),
        ("https:///nohost", "no host"),
        ("https://93.184.215.14:99999/", "not a valid URL"),
        ("https://" + "a" * 3000 + ".com/", "longer than"),
    ],
)
async def test_unsafe_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError, match=reason.replace("[", r"\[").replace(".", r"\.")):
        await check_url(url, DEFAULT)


async def test_public_address_is_allowed() -> None:
    assert [str(a) for a in await check_url("https://93.184.215.14/hook", DEFAULT)] == ["93.184.215.14"]


async def test_allow_listed_network_permits_loopback_over_http() -> None:
    policy = UrlPolicy.from_lists(allow_http=True, networks=["127.0.0.0/8", "::1/128"])
    assert [str(a) for a in await check_url("http://127.0.0.1:8080/hook", policy)] == ["127.0.0.1"]
    with pytest.raises(UnsafeURLError, match=r"10\.0\.0\.1"):
        await check_url("http://10.0.0.1/hook", policy)


async def test_allow_listed_host_name_is_trusted() -> None:
    policy = UrlPolicy.from_lists(hosts=["localhost"])
    assert await check_url("https://localhost/hook", policy)


async def test_ipv6_forms_of_a_public_ipv4_address_stay_allowed() -> None:
    for url in ("https://[64:ff9b::93.184.215.14]/", "https://[2002:5db8:d70e::1]/"):
        assert await check_url(url, DEFAULT), url
