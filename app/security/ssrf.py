"""Server-side request forgery guard for fetching URLs a model chose.

Every address a request could reach is vetted: loopback, private, shared (CGNAT), link-local
(cloud metadata at 169.254.169.254 among them), multicast, reserved and unspecified addresses are
refused unless FETCH_ALLOWED_NETWORKS lists them. IPv6 forms that carry an IPv4 address
(IPv4-mapped, 6to4, NAT64) are judged by that IPv4 address.

`GuardedResolver` vets the addresses a hostname resolves to, refusing if any is disallowed, and
hands the connector exactly those addresses: the connection goes to what was vetted, so a name
that resolves differently later (DNS rebinding) cannot slip through. `check_url` applies the same
vetting to a URL before each request, which also covers IP literals (aiohttp never resolves
those) in every numeric form getaddrinfo accepts (`127.1`, `2130706433`, `[::1]`).
`GuardedClient` puts the two together and follows redirects itself, checking every target.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from app.errors import InvalidRequest, ToolError

IPAddress = IPv4Address | IPv6Address

_NAT64 = ip_network("64:ff9b::/96")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class AddressRefused(InvalidRequest):
    """A URL's host is, or resolves to, an address the policy refuses."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="url")


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), else the address."""
    if isinstance(address, IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _kind(address: IPAddress) -> str | None:
    """What makes an address unfit to fetch from, or None for a public unicast address."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if isinstance(address, IPv6Address) and address.is_site_local:
        return "a site-local address"
    if not address.is_global:
        return "a non-public address"
    return None


class AddressPolicy:
    """Which addresses may be fetched from: public unicast ones, plus `allowed_networks`."""

    def __init__(self, allowed_networks: Iterable[str] = ()) -> None:
        self._allowed = [ip_network(net, strict=False) for net in allowed_networks]

    def refusal(self, address: str) -> str | None:
        """Why `address` is refused (such as "a loopback address"), or None when allowed."""
        try:
            parsed = ip_address(address)
        except ValueError:
            return "not an IP address"
        judged = embedded_ipv4(parsed)
        if any(parsed in net or judged in net for net in self._allowed):
            return None
        return _kind(judged)


class GuardedResolver(AbstractResolver):
    """Resolves through `inner` (getaddrinfo by default) and refuses the whole answer if any
    address in it is disallowed."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = self.policy.refusal(result["host"])
            if reason is not None:
                shown = host if result["host"] == host else f"{host} ({result['host']})"
                raise AddressRefused(
                    f"refusing to fetch from {shown}: it is {reason}; "
                    "FETCH_ALLOWED_NETWORKS can allow it"
                )
        return results

    async def close(self) -> None:
        await self._inner.close()


async def check_url(url: URL, resolver: GuardedResolver) -> None:
    """Refuse `url` unless it is http(s) with a host whose every address the policy allows;
    raises `AddressRefused`, `InvalidRequest`, or `ToolError` when the host does not resolve."""
    if url.scheme not in ("http", "https"):
        raise InvalidRequest(f"only http and https URLs can be fetched, not {url}", param="url")
    if not url.raw_host or url.port is None:
        raise InvalidRequest(f"{url} has no host to fetch from", param="url")
    try:
        await resolver.resolve(url.raw_host, url.port, socket.AF_UNSPEC)
    except OSError as exc:
        raise ToolError(f"could not reach {url.raw_host}: {exc.strerror or exc}") from None


class GuardedClient:
    """GETs URLs over connections that reach only vetted addresses, following redirects itself
    so that every target is checked: no proxies from the environment, no DNS cache, and no
    cookies carried from one fetch to the next."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        timeout: aiohttp.ClientTimeout,
        headers: Mapping[str, str],
        max_redirects: int,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._policy = policy
        self._timeout = timeout
        self._headers = dict(headers)
        self._max_redirects = max_redirects
        self._inner = resolver
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None

    def _open(self) -> tuple[aiohttp.ClientSession, GuardedResolver]:
        if self._session is None or self._resolver is None:
            self._resolver = GuardedResolver(self._policy, self._inner)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver, use_dns_cache=False),
                timeout=self._timeout,
                headers=self._headers,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session, self._resolver

    @asynccontextmanager
    async def get(self, url: URL) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response that is not a redirect. Raises `AddressRefused` or `InvalidRequest` for a
        URL (or redirect target) that may not be fetched, `ToolError` for a host that does not
        resolve or past the redirect limit, and `aiohttp.ClientError` when the network fails."""
        session, resolver = self._open()
        start = url
        for _ in range(self._max_redirects + 1):
            await check_url(url, resolver)
            async with session.get(url, allow_redirects=False) as resp:
                location = resp.headers.get("Location") if resp.status in _REDIRECTS else None
                if location is None:
                    yield resp
                    return
            try:
                url = resp.url.join(URL(location))
            except ValueError:
                raise ToolError(f"{resp.url} redirected to an invalid URL: {location!r}") from None
        raise ToolError(f"{start} redirects more than {self._max_redirects} times")

    async def aclose(self) -> None:
        if self._session is not None and self._resolver is not None:
            await self._session.close()
            await self._resolver.close()
