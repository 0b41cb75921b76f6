"""Streaming downloads of finished videos from provider links, behind the SSRF guard.

Redirects are followed by hand (at most 3), each hop re-checked, because a CDN link that redirects to an
internal address must not be fetched; connections are pinned to the checked address (`netguard`). A file
larger than `MAX_OUTPUT_BYTES` is refused from its Content-Length before a byte is read, or the moment the
stream passes the limit, so a provider or CDN that streams forever costs at most the limit, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin

import httpx

from kling_pipeline.config import get_settings
from kling_pipeline.domain.media import NotAnMp4
from kling_pipeline.netguard import UnsafeUrl, check_url, guarded_client

MAX_REDIRECTS = 3


class LinkExpired(Exception):
    """The provider's link no longer serves the file (403/404/410): ask the provider for a fresh one."""


class DownloadFailed(Exception):
    """The download broke off or the server failed: retry later."""


class OutputTooLarge(NotAnMp4):
    """The file is over `MAX_OUTPUT_BYTES`: no retry will make it smaller, so the generation fails."""

    def __init__(self, size: int | None, limit: int) -> None:
        shown = f"{size} bytes" if size is not None else "more bytes"
        super().__init__(f"the provider's file has {shown}; MAX_OUTPUT_BYTES is {limit}")


@contextmanager
def open_download(url: str) -> Iterator[Iterator[bytes]]:
    timeout = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)
    limit = get_settings().max_output_bytes
    with guarded_client(timeout=timeout) as client:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                check_url(url)
            except UnsafeUrl as exc:
                raise DownloadFailed(f"refusing to download: {exc}") from exc
            try:
                with client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code in (403, 404, 410):
                        raise LinkExpired(f"download link answered {response.status_code}")
                    if response.status_code != 200:
                        raise DownloadFailed(f"download link answered {response.status_code}")
                    declared = _content_length(response)
                    if declared is not None and declared > limit:
                        raise OutputTooLarge(declared, limit)
                    yield _chunks(response, limit)
                    return
            except httpx.TransportError as exc:
                raise DownloadFailed(f"download failed: {exc.__class__.__name__}") from exc
        raise DownloadFailed("too many redirects")


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _chunks(response: httpx.Response, limit: int) -> Iterator[bytes]:
    received = 0
    try:
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > limit:
                raise OutputTooLarge(None, limit)
            yield chunk
    except httpx.HTTPError as exc:
        raise DownloadFailed(f"download broke off: {exc.__class__.__name__}") from exc
