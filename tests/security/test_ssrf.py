"""The SSRF address policy and host vetting, at the address-check level: resolvers are faked
(or getaddrinfo is asked about numeric and local names only) and no connection is ever opened."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from app.errors import InvalidRequest, ToolError
from app.security.ssrf import AddressPolicy, AddressRefused, GuardedResolver, check_url


class FakeResolver(AbstractResolver):
    """Answers every name with `addresses`, or raises `error`; records the names asked."""

    def __init__(self, *addresses: str, error: OSError | None = None) -> None:
        self.addresses = addresses
        self.error = error
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if self.error is not None:
            raise self.error
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


REFUSED = [
    ("127.0.0.1", "a loopback address"),
    ("127.255.0.9", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("100.64.0.1", "a non-public address"),
    ("169.254.169.254", "a link-local address"),
    ("169.254.170.2", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("fe80::1%2", "a link-local address"),
    ("fc00::1", "a private address"),
    ("fd00:ec2::254", "a private address"),
    ("fec0::1", "a site-local address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("::ffff:127.0.0.1", "a loopback address"),
    ("::ffff:169.254.169.254", "a link-local address"),
    ("::ffff:10.0.0.1", "a private address"),
    ("2002:7f00:1::", "a loopback address"),
    ("2002:a9fe:a9fe::", "a link-local address"),
    ("64:ff9b::7f00:1", "a loopback address"),
    ("64:ff9b::a00:1", "a private address"),
    ("2001::1", "a private address"),
    ("not-an-address", "not an IP address"),
]

PUBLIC = ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_non_public_addresses_are_refused_by_default(address: str, reason: str) -> None:
    assert AddressPolicy().refusal(address) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().refusal(address) is None


def test_allowed_networks_open_exactly_what_they_list() -> None:
    policy = AddressPolicy(["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"])
    for allowed in ("10.1.2.3", "::ffff:10.1.2.3", "127.0.0.1", "::ffff:127.0.0.1", "fd00::5"):
        assert policy.refusal(allowed) is None, allowed
    for refused in ("127.0.0.2", "::1", "192.168.0.1", "169.254.169.254", "fc00::1"):
        assert policy.refusal(refused) is not None, refused


@pytest.mark.parametrize(
    "addresses",
    [
        ("10.0.0.5",),
        ("169.254.169.254",),
        ("fd00:ec2::254",),
        ("::ffff:192.168.0.1",),
        ("93.184.216.34", "169.254.169.254"),
        ("2606:4700:4700::1111", "fe80::1"),
    ],
)
async def test_a_name_is_refused_if_any_address_it_resolves_to_is(
    addresses: tuple[str, ...],
) -> None:
    inner = FakeResolver(*addresses)
    with pytest.raises(AddressRefused) as caught:
        await check_url(URL("http://intranet.example/"), GuardedResolver(AddressPolicy(), inner))
    assert caught.value.param == "url"
    assert caught.value.message.startswith("refusing to fetch from intranet.example (")
    assert "FETCH_ALLOWED_NETWORKS" in caught.value.message
    assert inner.asked == ["intranet.example"]


async def test_the_metadata_service_is_refused_by_name_too() -> None:
    resolver = GuardedResolver(AddressPolicy(), FakeResolver("169.254.169.254"))
    with pytest.raises(AddressRefused, match="link-local"):
        await check_url(URL("http://metadata.google.internal/computeMetadata/v1/"), resolver)


async def test_public_answers_are_handed_on_unchanged() -> None:
    resolver = GuardedResolver(AddressPolicy(), FakeResolver("93.184.216.34", "2606:2800::1"))
    answers = await resolver.resolve("example.com", 443)
    assert [a["host"] for a in answers] == ["93.184.216.34", "2606:2800::1"]
    assert {a["port"] for a in answers} == {443}


async def test_an_allowed_network_lets_a_private_name_through() -> None:
    resolver = GuardedResolver(AddressPolicy(["10.0.0.0/8"]), FakeResolver("10.0.0.5"))
    await check_url(URL("http://wiki.internal/"), resolver)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/",
        "http://[::1]/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "https://[fd00::1]/",
        "http://[fe80::1]/",
    ],
)
async def test_loopback_and_internal_literals_are_caught_in_every_numeric_form(url: str) -> None:
    # The real getaddrinfo: each of these is numeric or in /etc/hosts, so nothing is sent.
    resolver = GuardedResolver(AddressPolicy())
    with pytest.raises(AddressRefused):
        await check_url(URL(url), resolver)
    await resolver.close()


@pytest.mark.parametrize(
    "url", ["ftp://example.org/file", "file:///etc/passwd", "gopher://127.0.0.1/", "/relative"]
)
async def test_only_http_and_https_are_fetched(url: str) -> None:
    inner = FakeResolver("93.184.216.34")
    with pytest.raises(InvalidRequest, match="only http and https"):
        await check_url(URL(url), GuardedResolver(AddressPolicy(), inner))
    assert inner.asked == []


async def test_a_url_without_a_host_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="no host"):
        await check_url(URL("http:///path"), GuardedResolver(AddressPolicy(), FakeResolver()))


async def test_a_name_that_does_not_resolve_is_a_clear_tool_error() -> None:
    error = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    resolver = GuardedResolver(AddressPolicy(), FakeResolver(error=error))
    with pytest.raises(ToolError) as caught:
        await check_url(URL("https://example.org/"), resolver)
    assert caught.value.message == (
        "could not reach example.org: Temporary failure in name resolution"
    )
