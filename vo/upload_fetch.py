"""The guarded fetch of tables uploaded by URL (TAP 1.1 section 2.5.1, ``UPLOAD=name,https://...``).

The service fetches a URL a user names, so the fetch is the classic server-side request
forgery surface (architecture decision 11). What this module enforces:

- ``http`` and ``https`` only, no credentials in the URL;
- the host name is resolved here, every address it resolves to is checked, and the
  connection goes to the checked address (the URL is rewritten to it, with the original
  ``Host`` header and, for https, the original name for SNI and certificate checks), so a
  second DNS answer cannot slip in between check and connect (DNS rebinding);
- loopback, private, link-local, shared (CGNAT), multicast, reserved and unspecified
  addresses are refused, also inside IPv4-mapped, 6to4 and Teredo IPv6 addresses, unless
  the operator allow-lists the host name or a network holding the address;
- redirects are followed by hand, at most :data:`MAX_REDIRECTS`, each hop checked again;
- the whole fetch (DNS, connections, redirects, body) has one deadline, and the body one
  byte limit, counted on the wire (``Accept-Encoding: identity``; a compressed answer is
  refused, so no small body inflates past the limit);
- the answer must be 200 with a VOTable-like media type.

The bytes returned are then read by ``vo/upload.py`` with the same checks as inline uploads.
Everything here is asynchronous (httpx, the event loop's resolver), so the API process never
blocks on a slow server; :func:`fetch_urls` runs the same code for the job runners (threads).
No SQL and no knowledge of VOTable beyond the media type.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx

from vo.errors import UsageError

__all__ = ["MAX_REDIRECTS", "FetchPolicy", "afetch", "afetch_urls", "fetch_urls", "forbidden_address"]

#: redirects followed per URL (each one checked like the first URL)
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
#: media types a VOTable is served with in the wild; anything else (an HTML page, JSON) is refused
_MEDIA_TYPES = {
    "application/x-votable+xml", "text/x-votable+xml", "application/xml", "text/xml",
    "application/octet-stream", "text/plain", "",
}
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FetchPolicy:
    """What a URL upload may reach and how long it may take."""

    #: host names (exact, any case), addresses or networks (CIDR) the operator allows even
    #: when they are loopback or private (VLKB_UPLOAD_URL_ALLOW_HOSTS)
    allow_hosts: tuple[str, ...] = ()
    #: seconds for the whole fetch of one URL, redirects included
    timeout: float = 30.0

    def _split(self) -> tuple[set[str], list[_IPNetwork]]:
        names: set[str] = set()
        networks: list[_IPNetwork] = []
        for entry in self.allow_hosts:
            entry = entry.strip().strip("[]")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))
        return names, networks

    def allows(self, host: str, address: _IPAddress) -> bool:
        """Whether ``address`` (which ``host`` resolved to) may be reached."""
        names, networks = self._split()
        if host.lower().rstrip(".") in names:
            return True
        return any(address in net for net in networks) or not forbidden_address(address)


def forbidden_address(address: _IPAddress) -> bool:
    """Whether ``address`` is one a public fetch must not reach (loopback, private, ...)."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner in (address.ipv4_mapped, address.sixtofour, address.teredo and address.teredo[1]):
            if inner and forbidden_address(inner):
                return True
    return (not address.is_global or address.is_multicast or address.is_reserved or address.is_unspecified
            or address.is_loopback or address.is_link_local or address.is_private)


def _check_url(label: str, url: httpx.URL) -> None:
    if url.scheme not in ("http", "https"):
        raise UsageError(f"UPLOAD {label}: only http and https URLs are fetched, got {str(url)!r}")
    if not url.host:
        raise UsageError(f"UPLOAD {label}: the URL {str(url)!r} names no host")
    if url.userinfo:
        raise UsageError(f"UPLOAD {label}: credentials in an upload URL are not accepted")


async def _addresses(label: str, host: str, port: int) -> list[_IPAddress]:
    """The addresses ``host`` resolves to, through the event loop's resolver (a thread)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"UPLOAD {label}: cannot resolve the host {host!r} ({exc})") from None
    out: list[_IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in out:
            out.append(address)
    if not out:
        raise UsageError(f"UPLOAD {label}: the host {host!r} has no address")
    return out


async def _checked_address(label: str, url: httpx.URL, policy: FetchPolicy) -> _IPAddress:
    """The address to connect to for ``url``: every address of its host must be allowed."""
    _check_url(label, url)
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = await _addresses(label, host, port)
    for address in addresses:
        if not policy.allows(host, address):
            raise UsageError(
                f"UPLOAD {label}: {str(url)!r} leads to {address}, a loopback, private, link-local or otherwise "
                "non-public address, which this service does not fetch (operators: VLKB_UPLOAD_URL_ALLOW_HOSTS)"
            )
    return addresses[0]


async def _read_body(label: str, url: str, response: httpx.Response, max_bytes: int) -> bytes:
    if response.status_code != 200:
        raise UsageError(f"UPLOAD {label}: {url!r} answered HTTP {response.status_code}, not a table")
    media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in _MEDIA_TYPES:
        raise UsageError(f"UPLOAD {label}: {url!r} is served as {media!r}, not a VOTable "
                         "(application/x-votable+xml or XML expected)")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UsageError(f"UPLOAD {label}: {url!r} came compressed ({encoding}); compressed uploads are "
                         "not accepted")
    declared = response.headers.get("content-length", "")
    too_big = f"UPLOAD {label}: {url!r} is larger than the {max_bytes} bytes this request may still upload"
    if declared.isdigit() and int(declared) > max_bytes:
        raise UsageError(too_big)
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise UsageError(too_big)
    return bytes(body)


async def _fetch(client: httpx.AsyncClient, label: str, url_text: str, max_bytes: int,
                 policy: FetchPolicy) -> bytes:
    try:
        url = httpx.URL(url_text)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UsageError(f"UPLOAD {label}: not a valid URL: {url_text!r} ({exc})") from None
    for _hop in range(MAX_REDIRECTS + 1):
        address = await _checked_address(label, url, policy)
        # connect to the checked address; the server still sees the name it was asked for
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        request = client.build_request(
            "GET", url.copy_with(host=str(address)), extensions=extensions,
            headers={"Host": url.netloc.decode("ascii"), "Accept-Encoding": "identity",
                     "Accept": "application/x-votable+xml, text/xml;q=0.8, */*;q=0.1"},
        )
        response = await client.send(request, stream=True)
        try:
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                url = url.join(location)
                continue
            return await _read_body(label, str(url), response, max_bytes)
        finally:
            await response.aclose()
    raise UsageError(f"UPLOAD {label}: {url_text!r} redirects more than {MAX_REDIRECTS} times")


async def afetch(label: str, url: str, max_bytes: int, policy: FetchPolicy,
                 timeout: float | None = None) -> bytes:
    """The body at ``url`` (at most ``max_bytes``), fetched under ``policy``.

    ``timeout`` (default the policy's) bounds the whole fetch; every failure is a UsageError
    that names the table and says why, since the URL is the user's.
    """
    limit = policy.timeout if timeout is None else min(timeout, policy.timeout)
    try:
        async with asyncio.timeout(limit), httpx.AsyncClient(
            trust_env=False, follow_redirects=False, timeout=httpx.Timeout(limit),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=0),
        ) as client:
            return await _fetch(client, label, url, max_bytes, policy)
    except TimeoutError:
        raise UsageError(f"UPLOAD {label}: {url!r} did not arrive within {limit:g} s") from None
    except httpx.TimeoutException:
        raise UsageError(f"UPLOAD {label}: {url!r} did not arrive within {limit:g} s") from None
    except httpx.HTTPError as exc:
        raise UsageError(f"UPLOAD {label}: cannot fetch {url!r} ({type(exc).__name__}: {exc})") from None


async def afetch_urls(items: Iterable[tuple[str, str]], max_bytes: int, policy: FetchPolicy,
                      timeout: float | None = None) -> dict[str, bytes]:
    """``{url: body}`` for (label, url) items, one after the other, all within ``max_bytes``."""
    out: dict[str, bytes] = {}
    left = max(max_bytes, 0)  # inline tables may have used it all: then any body is too large
    for label, url in items:
        if url in out:
            continue
        out[url] = await afetch(label, url, left, policy, timeout)
        left -= len(out[url])
    return out


def fetch_urls(items: Sequence[tuple[str, str]], max_bytes: int, policy: FetchPolicy,
               timeout: float | None = None) -> dict[str, bytes]:
    """:func:`afetch_urls` for synchronous callers (job runners, in their own thread)."""
    if not items:
        return {}
    return asyncio.run(afetch_urls(items, max_bytes, policy, timeout))
