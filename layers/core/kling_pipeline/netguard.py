"""SSRF guard for every URL we fetch or post to that we did not choose ourselves.

Checked at use time (not only at submit time), on the resolved addresses, so a DNS name that later
points at 169.254.169.254 or a private range is refused. And the connection itself goes to the address that
was checked: `guarded_client` resolves and checks inside the socket layer's connect, so a name that answers
public for a check and private a moment later (DNS rebinding) never gets a connection. The URL, the `Host`
header and TLS SNI/certificate checks all keep the name. Our clients never follow redirects on their own
(downloads follow them by hand, checking each hop).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from kling_pipeline.config import get_settings
from kling_pipeline.domain.validation import is_forbidden_ip

if TYPE_CHECKING:
    import ssl


class UnsafeUrl(ValueError):
    """The URL is not https, or resolves to an address we never talk to."""


def check_url(url: str, *, allow_private: bool = False) -> None:
    """Raise UnsafeUrl unless `url` is https to public addresses only.

    Locally (`LOCAL_ALLOW_HTTP_LOOPBACK`), plain http to loopback is accepted: that is how the simulator
    and the local front door are reached. `allow_private` (LOCAL_ALLOW_PRIVATE_WEBHOOKS) lifts the
    address check for the demo's local webhook receiver.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise UnsafeUrl("URL has no host")
    addresses = checked_addresses(host, parts.port or (443 if parts.scheme == "https" else 80), allow_private)
    exempt = allow_private or all(address.is_loopback for address in addresses)
    if parts.scheme != "https" and not exempt:
        raise UnsafeUrl("only https URLs are allowed")


def checked_addresses(
    host: str, port: int, allow_private: bool = False
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """`host`'s addresses, or UnsafeUrl when any of them is one we never talk to (loopback is allowed when
    every address is loopback and `LOCAL_ALLOW_HTTP_LOOPBACK` is on; anything with `allow_private`)."""
    addresses = _resolve(host, port)
    exempt = allow_private or (
        get_settings().local_allow_http_loopback and all(address.is_loopback for address in addresses)
    )
    if not exempt and any(is_forbidden_ip(address) for address in addresses):
        raise UnsafeUrl(f"{host} resolves to a private, loopback or link-local address")
    return addresses


@cache
def _guarded_backend() -> type[Any]:
    """httpcore's socket layer, but every TCP connect resolves the name itself, checks the answer and
    connects to that very address; httpcore still does TLS with the name (SNI, certificate). Built on
    first use: httpcore (~30 ms of a cold start) is only needed once a guarded client is."""
    import httpcore

    class GuardedBackend(httpcore.SyncBackend):
        def __init__(self, allow_private: bool) -> None:
            self._allow_private = allow_private

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            try:
                address = checked_addresses(host, port, self._allow_private)[0]
            except UnsafeUrl as exc:
                raise httpcore.ConnectError(str(exc)) from None
            return super().connect_tcp(str(address), port, timeout, local_address, socket_options)

    return GuardedBackend


@cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi's CA bundle, no SSL_CERT_* from the environment), built
    once per process: loading the bundle costs ~15 ms of CPU, which every download, webhook and remote
    input paid (twice: the transport built one of its own before its pool was replaced). A context is
    safe to share between clients and threads; nothing changes it after this."""
    return httpx.create_ssl_context(trust_env=False)


def guarded_client(
    *, timeout: float | httpx.Timeout, allow_private: bool = False, headers: Mapping[str, str] | None = None
) -> httpx.Client:
    """An httpx client for URLs we did not choose: no redirects, no proxy or .netrc from the environment,
    and connections pinned to the checked address (see the module docstring)."""
    import httpcore

    tls = _tls_context()
    transport = httpx.HTTPTransport(verify=tls, trust_env=False)
    # httpx has no public hook for the socket layer; its pool is rebuilt with ours (same defaults).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=tls, network_backend=_guarded_backend()(allow_private)
    )
    return httpx.Client(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False, headers=headers
    )


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"{host} does not resolve") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
