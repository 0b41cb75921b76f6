"""`https://` inputs (and, in the local stack, `http://` on loopback) read by header-only ranged GETs.

The probes of `domain.media` ask a `RangeReader` for a few ranges; here each range is one `Range: bytes=a-b`
GET through the SSRF guard (`netguard.guarded_client`: public addresses only, connection pinned to the
checked address, redirects followed by hand and re-checked). One `ProbeBudget` bounds a whole request's
probing in time and bytes, so a host that never answers, trickles, or serves a gigabyte costs at most the
budget and reads as a field error ("did not answer within 10 s"), never a hang or a 500.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import urljoin, urlsplit

import httpx

from kling_pipeline.config import get_settings
from kling_pipeline.errors import InvalidInput
from kling_pipeline.netguard import UnsafeUrl, check_url, guarded_client

# The first read fetches this much: a PNG/JPEG header or an MP4's ftyp (and a faststart moov) in one GET.
FIRST_BLOCK_BYTES = 64 * 1024
MAX_REDIRECTS = 3
USER_AGENT = "kling-pipeline-input-probe/1.0"


@dataclass
class ProbeBudget:
    """Time and bytes one request may spend fetching input headers, shared by all its inputs."""

    seconds: float
    max_bytes: int
    deadline: float = field(init=False)
    spent_bytes: int = 0

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    @classmethod
    def from_settings(cls) -> ProbeBudget:
        settings = get_settings()
        return cls(seconds=settings.input_probe_timeout_s, max_bytes=settings.input_probe_max_bytes)

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_range: str = ""
    location: str | None = None


class HttpRangeReader:
    """A `RangeReader` over a URL: `size` from the first answer's Content-Range, each read one ranged GET.

    A server that ignores `Range` (200 with the whole body) is read once, within the byte budget, and
    served from memory; past the budget it is refused, because the probe must never download a whole video.
    """

    def __init__(self, client: httpx.Client, url: str, field_name: str, budget: ProbeBudget) -> None:
        self._client = client
        self._field = field_name
        self._budget = budget
        self._host = urlsplit(url).hostname or url
        self._url, self._size, self._whole, first = self._first_read(url)
        self._first = first

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self._size:
            return b""
        end = min(offset + length, self._size)
        if self._whole is not None:
            return self._whole[offset:end]
        if end <= len(self._first):
            return self._first[offset:end]
        answer = self._get(self._url, offset, end - 1)
        if answer.status != 206:
            raise self._issue(f"answered HTTP {answer.status} to a range request")
        return answer.body

    def _first_read(self, url: str) -> tuple[str, int, bytes | None, bytes]:
        for _ in range(MAX_REDIRECTS + 1):
            answer = self._get(url, 0, FIRST_BLOCK_BYTES - 1)
            if answer.location is not None:
                url = urljoin(url, answer.location)
                continue
            if answer.status == 206:
                total = answer.content_range.rpartition("/")[2]
                if not total.isdigit():
                    raise self._issue("answered a range request without the file's total size")
                return url, int(total), None, answer.body
            if answer.status == 200:  # Range ignored: the whole body came (within the budget)
                return url, len(answer.body), answer.body, answer.body
            raise self._issue(f"could not be fetched: HTTP {answer.status}")
        raise self._issue(f"could not be fetched: more than {MAX_REDIRECTS} redirects")

    def _get(self, url: str, first: int, last: int) -> _Answer:
        """One ranged GET within the budget: checked URL, timeout = the time left, body capped at the bytes
        left (a server that sends more than asked is cut off)."""
        try:
            check_url(url)
        except UnsafeUrl as exc:
            raise self._issue(f"must be a public https:// URL: {exc}") from None
        remaining = self._budget.remaining_s()
        if remaining <= 0:
            raise self._timed_out()
        try:
            with self._client.stream(
                "GET", url, headers={"range": f"bytes={first}-{last}"}, timeout=remaining
            ) as response:
                if response.is_redirect:
                    return _Answer(response.status_code, b"", location=response.headers.get("location"))
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    self._budget.spent_bytes += len(chunk)
                    if self._budget.spent_bytes > self._budget.max_bytes:
                        mib = self._budget.max_bytes // (1024 * 1024)
                        raise self._issue(
                            f"needs more than {mib} MB of reads to check; "
                            "serve it with range requests (Accept-Ranges: bytes)"
                        )
                    if self._budget.remaining_s() <= 0:
                        raise self._timed_out()
                content_range = response.headers.get("content-range", "")
                return _Answer(response.status_code, bytes(body), content_range=content_range)
        except httpx.TimeoutException:
            raise self._timed_out() from None
        except httpx.HTTPError:
            raise self._issue("could not be fetched: the host could not be reached") from None

    def _timed_out(self) -> InvalidInput:
        return self._issue(f"did not answer within {self._budget.seconds:g} s ({self._host})")

    def _issue(self, issue: str) -> InvalidInput:
        return InvalidInput.for_field(self._field, issue)


def open_url(url: str, field_name: str, budget: ProbeBudget) -> HttpRangeReader:
    """A reader over `url` (its first block already fetched); raises InvalidInput addressed to the field."""
    return HttpRangeReader(_client(), url, field_name, budget)


@cache
def _client() -> httpx.Client:
    """One pinned client per process (it holds no settings: the guard reads them on every connect)."""
    return guarded_client(timeout=10.0, headers={"user-agent": USER_AGENT})
