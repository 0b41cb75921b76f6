"""Streaming downloads of finished videos from provider links, behind the SSRF guard.

Redirects are followed by hand (at most 3), each hop re-checked, because a CDN link that redirects to an
internal address must not be fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin

import httpx

from kling_pipeline.netguard import UnsafeUrl, check_url

CHUNK_SIZE = 1024 * 1024
MAX_REDIRECTS = 3


class LinkExpired(Exception):
    """The provider's link no longer serves the file (403/404/410): ask the provider for a fresh one."""


class DownloadFailed(Exception):
    """The download broke off or the server failed: retry later."""


@contextmanager
def open_download(url: str) -> Iterator[Iterator[bytes]]:
    timeout = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                check_url(url)
            except UnsafeUrl as exc:
                raise DownloadFailed(f"refusing to download: {exc}") from exc
            with client.stream("GET", url) as response:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code in (403, 404, 410):
                    raise LinkExpired(f"download link answered {response.status_code}")
                if response.status_code != 200:
                    raise DownloadFailed(f"download link answered {response.status_code}")
                yield _chunks(response)
                return
        raise DownloadFailed("too many redirects")


def _chunks(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes(CHUNK_SIZE)
    except httpx.HTTPError as exc:
        raise DownloadFailed(f"download broke off: {exc.__class__.__name__}") from exc
