"""HTTP plumbing shared by the provider adapters: one client factory, one retry policy, one status table.

Why here and not in each adapter: the rules that keep money and results safe are the same for every
provider — explicit timeouts, https only (plain http only on loopback for the local stack), never retry a
final answer, never retry a throttle inline (the router fails over and the pipeline queues), and never
re-send a create that may have reached the provider unless the provider can be asked first.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from kling_pipeline.config import Settings
from kling_pipeline.errors import ProviderError, ProviderErrorKind

T = TypeVar("T")

# Errors raised before a single byte of the request reached the provider: safe to re-send anything.
UNSENT_ERRORS: tuple[type[httpx.HTTPError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class InsecureBaseUrl(ValueError):
    """A provider base URL that would send credentials in clear text or to an unexpected place."""


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, allow_http_loopback: bool) -> str:
    """The base URL without a trailing slash, or `InsecureBaseUrl`.

    Bearer keys and JWTs travel with every request, so anything but https is refused — except plain
    http to a loopback host when the local stack asks for it (the simulator on 127.0.0.1).
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise InsecureBaseUrl(f"provider base URL has no host: {url!r}")
    if parts.scheme == "https":
        return url.rstrip("/")
    if parts.scheme == "http" and allow_http_loopback and _is_loopback(host):
        return url.rstrip("/")
    if parts.scheme == "http" and _is_loopback(host):
        raise InsecureBaseUrl(f"plain http to {host} needs LOCAL_ALLOW_HTTP_LOOPBACK=1: {url!r}")
    raise InsecureBaseUrl(f"provider base URL must use https: {url!r}")


def make_timeout(seconds: float) -> httpx.Timeout:
    """Every phase bounded: connect and pool waits short (fail fast, fail over), read/write the budget."""
    short = min(seconds, 10.0)
    return httpx.Timeout(connect=short, read=seconds, write=seconds, pool=short)


def make_http_client(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The one client all adapters share (connection reuse across warm Lambda invocations).

    Redirects are not followed: a redirect would carry our Authorization header somewhere unchecked.
    """
    return httpx.Client(
        timeout=make_timeout(settings.http_timeout_s),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        headers={"User-Agent": "kling-pipeline/0.1", "Accept": "application/json"},
        transport=transport,
    )


# --------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------


def kind_for_http_status(status: int) -> tuple[ProviderErrorKind, str]:
    """Our (kind, code) for an HTTP status when the body says nothing more specific."""
    if status == 429:
        return "throttled", "rate_limited"
    if status in (401, 403):
        return "final", "auth"
    if status == 402:
        return "retryable", "account_error"
    if status == 404:
        return "final", "not_found"
    if status in (408, 409, 425) or status >= 500:
        return "retryable", "provider_error"
    return "final", "bad_request"


def transport_error(provider: str, exc: httpx.HTTPError) -> ProviderError:
    """A transport failure in our terms: always retryable (the next provider may well be reachable)."""
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "provider_error"
    unsent = is_unsent(exc)
    sent = "" if unsent else " (the request may have reached the provider)"
    return ProviderError(provider, "retryable", code, f"{type(exc).__name__}: {exc}{sent}", sent=not unsent)


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when it is not one (an HTML error page from a proxy, say)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"data": body}


def json_object(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else {}: a provider's nested field is never trusted to be one."""
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------------------------------


def is_retryable(exc: BaseException) -> bool:
    """Retry inline only what another attempt may fix: transport errors and `retryable` provider answers.

    `final` never; `throttled` never inline — the router fails over and the pipeline queues with backoff.
    """
    if isinstance(exc, ProviderError):
        return exc.kind == "retryable"
    return isinstance(exc, httpx.TransportError)


def is_unsent(exc: BaseException) -> bool:
    """True only when the request provably never left, so re-sending a create cannot make a second task."""
    return isinstance(exc, UNSENT_ERRORS)


@dataclass(frozen=True)
class RetryPolicy:
    """A few attempts with exponential backoff and jitter; `sleep` is injectable so tests never wait."""

    attempts: int = 3
    initial_s: float = 0.5
    max_s: float = 4.0
    jitter_s: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def retrying(self, predicate: Callable[[BaseException], bool]) -> Retrying:
        """A tenacity `Retrying` that re-raises the last error itself (not a RetryError)."""
        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.initial_s, max=self.max_s) + wait_random(0, self.jitter_s),
            retry=retry_if_exception(predicate),
            sleep=self.sleep,
            reraise=True,
        )

    def call(self, fn: Callable[[], T], *, idempotent: bool) -> T:
        """Run `fn` under the policy.

        Idempotent calls (queries, lookups, deletes) retry on any retryable error. A non-idempotent create
        with no way to look the task up afterwards retries only when the request never left.
        """
        predicate = is_retryable if idempotent else is_unsent
        return self.retrying(predicate)(fn)


DEFAULT_RETRY = RetryPolicy()
NO_WAIT_RETRY = RetryPolicy(initial_s=0.0, max_s=0.0, jitter_s=0.0, sleep=lambda _s: None)


# --------------------------------------------------------------------------------------------------
# One JSON API of one provider
# --------------------------------------------------------------------------------------------------

ErrorClassifier = Callable[[httpx.Response, dict[str, Any]], ProviderError | None]
AuthHeaders = Callable[[], dict[str, str]]


def bearer(api_key: str) -> AuthHeaders:
    """A static API key (the gateways); Kling's JWT is re-signed instead, see `kling.JwtSigner`."""
    headers = {"Authorization": f"Bearer {api_key}"}
    return lambda: headers


@dataclass
class JsonApi:
    """A provider's JSON endpoints: auth headers, error classification and the retry policy in one place.

    Adapters call `call()` (retried per policy, transport errors translated to `ProviderError`) or
    `call_once()` when they run their own attempt loop (Kling's create-then-look-up) and need the raw
    transport error to know whether the request left.
    """

    provider: str
    base_url: str
    client: httpx.Client
    auth: AuthHeaders
    classify: ErrorClassifier
    retry: RetryPolicy = DEFAULT_RETRY

    def call_once(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One request; raises the raw `httpx.TransportError` or a classified `ProviderError`."""
        response = self.client.request(
            method, f"{self.base_url}{path}", json=json, params=params, headers=self.auth()
        )
        body = json_body(response)
        error = self.classify(response, body)
        if error is not None:
            raise error
        return body

    def call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """`call_once` under the retry policy; whatever still fails surfaces as a `ProviderError`."""
        try:
            return self.retry.call(
                lambda: self.call_once(method, path, json=json, params=params), idempotent=idempotent
            )
        except httpx.HTTPError as exc:
            raise transport_error(self.provider, exc) from exc


def wire_decimal(value: Any) -> Decimal | None:
    """A number as providers send it (int, float, "5", "", null) as a Decimal; None when it is not one."""
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
