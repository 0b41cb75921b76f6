"""What `Client` and `AsyncClient` share: configuration, request bodies, retry decisions, decoding.

Everything here is pure (no I/O), so the sync and async clients differ only in how they wait and send.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from kling_pipeline_sdk.errors import ChecksumMismatchError, KlingPipelineError, error_from_response
from kling_pipeline_sdk.models import Generation, Output

URL_ENV = "KLING_PIPELINE_URL"
KEY_ENV = "KLING_PIPELINE_API_KEY"
USER_AGENT = "kling-pipeline-sdk/0.1"

# Always retried (the server asks to come back later); honouring Retry-After when it is sent.
RETRY_STATUSES = frozenset({429, 503})
# Retried only when sending twice is harmless (reads, and writes carrying an Idempotency-Key).
RETRY_IF_SAFE = frozenset({500, 502, 504})
MAX_RETRY_WAIT_S = 60.0
CHUNK_BYTES = 1024 * 1024

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
}


@dataclass(frozen=True)
class Settings:
    url: str
    api_key: str
    timeout_s: float
    max_retries: int


def settings(url: str | None, api_key: str | None, timeout_s: float, max_retries: int) -> Settings:
    """Arguments first, then `KLING_PIPELINE_URL` / `KLING_PIPELINE_API_KEY`."""
    base = url or os.environ.get(URL_ENV)
    key = api_key or os.environ.get(KEY_ENV)
    if not base:
        raise KlingPipelineError(f"no API URL: pass url= or set {URL_ENV}")
    if not key:
        raise KlingPipelineError(f"no API key: pass api_key= or set {KEY_ENV}")
    return Settings(base.rstrip("/"), key, timeout_s, max_retries)


def headers(api_key: str) -> dict[str, str]:
    return {"x-api-key": api_key, "user-agent": USER_AGENT, "accept": "application/json"}


def body(request: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body from a request mapping and/or keyword fields; `None` means "not given"."""
    merged = {**(request or {}), **fields}
    return {name: value for name, value in merged.items() if value is not None}


def create_headers(idempotency_key: str | None) -> dict[str, str]:
    """Every create carries an Idempotency-Key, so a retry after a lost answer never creates twice."""
    return {"Idempotency-Key": idempotency_key or f"sdk-{uuid.uuid4()}"}


def is_safe(method: str, request_headers: Mapping[str, str] | None) -> bool:
    return method in {"GET", "HEAD", "DELETE"} or "Idempotency-Key" in (request_headers or {})


def retry_delay(response: httpx.Response | None, attempt: int, *, safe: bool) -> float | None:
    """Seconds to wait before trying again, or None to stop (a final answer, or not safe to resend).

    `response` is None after a transport error. Retry-After (seconds or an HTTP date) wins over the
    exponential backoff with jitter.
    """
    if response is not None:
        if response.status_code not in RETRY_STATUSES and not (
            safe and response.status_code in RETRY_IF_SAFE
        ):
            return None
        if (after := _retry_after(response.headers.get("retry-after"))) is not None:
            return min(after, MAX_RETRY_WAIT_S)
    elif not safe:
        return None
    backoff: float = 0.5 * 2**attempt + random.uniform(0, 0.25)
    return min(backoff, MAX_RETRY_WAIT_S)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def decode(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer (None for 204); any other answer raises its `ApiError`."""
    if response.is_success:
        return response.json() if response.status_code != 204 and response.content else None
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.text
    raise error_from_response(response.status_code, payload)


def content_type_for(path: Path, content_type: str | None) -> str:
    if content_type:
        return content_type
    guessed = CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
    if guessed is None or guessed not in CONTENT_TYPES.values():
        raise KlingPipelineError(f"{path}: only JPG, PNG, MP4 and MOV inputs can be uploaded")
    return guessed


def output_path(directory: Path, generation: Generation, index: int, output: Output) -> Path:
    suffix = Path(output.s3_uri).suffix or ".mp4"
    name = (
        f"{generation.id}{suffix}" if len(generation.outputs) == 1 else f"{generation.id}-{index + 1}{suffix}"
    )
    return directory / name


def downloadable(generation: Generation) -> list[Output]:
    if not generation.outputs:
        raise KlingPipelineError(f"{generation.id} has no outputs (status {generation.status})")
    missing = [output.s3_uri for output in generation.outputs if not output.url]
    if missing:
        raise KlingPipelineError(f"{generation.id}: no download URL for {', '.join(missing)}")
    return generation.outputs


class Digest:
    """SHA-256 of a download as it is written; `finish` keeps the file only if it matches the record."""

    def __init__(self, target: Path, output: Output) -> None:
        self.target = target
        self.partial = target.with_name(target.name + ".part")
        self.output = output
        self._hash = hashlib.sha256()
        self._size = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._size += len(chunk)

    def finish(self) -> Path:
        actual = self._hash.hexdigest()
        if actual != self.output.sha256:
            self.partial.unlink(missing_ok=True)
            raise ChecksumMismatchError(
                f"{self.output.s3_uri}: sha256 {actual} ({self._size} bytes) != recorded {self.output.sha256}"
            )
        self.partial.replace(self.target)
        return self.target
