"""SSRF guard for every URL we fetch or post to that we did not choose ourselves.

Checked at use time (not only at submit time), on the resolved addresses, so a DNS name that later
points at 169.254.169.254 or a private range is refused. Our clients never follow redirects on their own
(downloads follow them by hand, checking each hop).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from kling_pipeline.config import get_settings
from kling_pipeline.domain.validation import is_forbidden_ip


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
    addresses = _resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    exempt = allow_private or (
        get_settings().local_allow_http_loopback and all(address.is_loopback for address in addresses)
    )
    if exempt:
        return
    if parts.scheme != "https":
        raise UnsafeUrl("only https URLs are allowed")
    if any(is_forbidden_ip(address) for address in addresses):
        raise UnsafeUrl(f"{host} resolves to a private, loopback or link-local address")


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"{host} does not resolve") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
