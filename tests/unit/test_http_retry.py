"""HTTP plumbing: base URL rules, timeouts, and the retry policy (what is retried, what never is)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from kling_pipeline.config import Settings
from kling_pipeline.domain.request import parse_generation_request
from kling_pipeline.errors import ProviderError
from kling_pipeline.providers.evolink import EvoLinkProvider
from kling_pipeline.providers.http import (
    NO_WAIT_RETRY,
    InsecureBaseUrl,
    JsonApi,
    RetryPolicy,
    check_base_url,
    is_retryable,
    is_unsent,
    make_http_client,
    make_timeout,
)
from kling_pipeline.providers.kling3api import Kling3ApiProvider

BASE = "https://provider.test"


# --------------------------------------------------------------------------------------------------
# Base URLs and client
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "loopback", "expected"),
    [
        ("https://api-singapore.klingai.com/", False, "https://api-singapore.klingai.com"),
        ("https://api.evolink.ai", True, "https://api.evolink.ai"),
        ("http://127.0.0.1:9100", True, "http://127.0.0.1:9100"),
        ("http://localhost:9100/", True, "http://localhost:9100"),
        ("http://[::1]:9100", True, "http://[::1]:9100"),
    ],
)
def test_accepted_base_urls(url: str, loopback: bool, expected: str) -> None:
    assert check_base_url(url, allow_http_loopback=loopback) == expected


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:9100", False),  # loopback but the local switch is off
        ("http://api.evolink.ai", True),  # plain http to a real host, even locally
        ("http://10.0.0.5", True),  # private is not loopback
        ("ftp://kling3api.com", True),
        ("https://", False),
    ],
)
def test_refused_base_urls(url: str, loopback: bool) -> None:
    with pytest.raises(InsecureBaseUrl):
        check_base_url(url, allow_http_loopback=loopback)


def test_timeouts_are_explicit_for_every_phase() -> None:
    timeout = make_timeout(30.0)
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (10.0, 30.0, 30.0, 10.0)
    short = make_timeout(3.0)
    assert (short.connect, short.read, short.write, short.pool) == (3.0, 3.0, 3.0, 3.0)


def test_client_uses_settings_timeout_and_no_redirects() -> None:
    client = make_http_client(Settings(http_timeout_s=12.0))
    assert client.timeout.read == 12.0
    assert client.follow_redirects is False


# --------------------------------------------------------------------------------------------------
# Predicates
# --------------------------------------------------------------------------------------------------


def perr(kind: Any) -> ProviderError:
    return ProviderError("p", kind, "code", "message")


def test_retry_predicates() -> None:
    assert is_retryable(perr("retryable"))
    assert not is_retryable(perr("final"))
    assert not is_retryable(perr("throttled"))
    assert is_retryable(httpx.ReadTimeout("slow"))
    assert is_retryable(httpx.ConnectError("refused"))
    assert not is_retryable(ValueError("bug"))
    assert is_unsent(httpx.ConnectError("refused"))
    assert is_unsent(httpx.ConnectTimeout("slow connect"))
    assert is_unsent(httpx.PoolTimeout("pool"))
    assert not is_unsent(httpx.ReadTimeout("slow"))
    assert not is_unsent(httpx.RemoteProtocolError("reset"))
    assert not is_unsent(perr("retryable"))


# --------------------------------------------------------------------------------------------------
# RetryPolicy
# --------------------------------------------------------------------------------------------------


class Flaky:
    """Raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_idempotent_retries_retryable_then_succeeds() -> None:
    fn = Flaky(perr("retryable"), httpx.ReadTimeout("slow"))
    assert NO_WAIT_RETRY.call(fn, idempotent=True) == "ok"
    assert fn.calls == 3


def test_gives_up_after_the_attempts_and_reraises_the_error_itself() -> None:
    fn = Flaky(*(perr("retryable") for _ in range(5)))
    with pytest.raises(ProviderError):
        NO_WAIT_RETRY.call(fn, idempotent=True)
    assert fn.calls == 3


@pytest.mark.parametrize("kind", ["final", "throttled"])
def test_final_and_throttled_are_never_retried(kind: str) -> None:
    fn = Flaky(perr(kind))
    with pytest.raises(ProviderError):
        NO_WAIT_RETRY.call(fn, idempotent=True)
    assert fn.calls == 1


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset"), perr("retryable")]
)
def test_non_idempotent_create_not_retried_when_it_may_have_arrived(error: BaseException) -> None:
    fn = Flaky(error)
    with pytest.raises(type(error)):
        NO_WAIT_RETRY.call(fn, idempotent=False)
    assert fn.calls == 1


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("busy")]
)
def test_non_idempotent_create_retried_when_it_never_left(error: BaseException) -> None:
    fn = Flaky(error)
    assert NO_WAIT_RETRY.call(fn, idempotent=False) == "ok"
    assert fn.calls == 2


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=5, initial_s=0.5, max_s=2.0, jitter_s=0.25, sleep=sleeps.append)
    fn = Flaky(*(perr("retryable") for _ in range(4)))
    assert policy.call(fn, idempotent=True) == "ok"
    assert len(sleeps) == 4
    for wait, base in zip(sleeps, [0.5, 1.0, 2.0, 2.0], strict=True):
        assert base <= wait <= base + 0.25


# --------------------------------------------------------------------------------------------------
# JsonApi over the wire
# --------------------------------------------------------------------------------------------------


def never_an_error(response: httpx.Response, body: dict[str, Any]) -> ProviderError | None:
    if response.status_code >= 500:
        return ProviderError("p", "retryable", "provider_error", "5xx", http_status=response.status_code)
    return None


def api() -> JsonApi:
    return JsonApi(
        "p", BASE, httpx.Client(), lambda: {"Authorization": "Bearer k"}, never_an_error, NO_WAIT_RETRY
    )


@respx.mock
def test_query_retried_on_5xx_until_success() -> None:
    route = respx.get(f"{BASE}/q").mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"ok": True})]
    )
    assert api().call("GET", "/q", idempotent=True) == {"ok": True}
    assert route.call_count == 3
    assert route.calls.last.request.headers["Authorization"] == "Bearer k"


@respx.mock
def test_transport_errors_surface_as_retryable_provider_errors() -> None:
    respx.get(f"{BASE}/q").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderError) as caught:
        api().call("GET", "/q", idempotent=True)
    assert (caught.value.kind, caught.value.code) == ("retryable", "timeout")
    respx.get(f"{BASE}/c").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ProviderError) as caught:
        api().call("GET", "/c", idempotent=True)
    assert (caught.value.kind, caught.value.code) == ("retryable", "provider_error")


@respx.mock
def test_non_json_body_is_tolerated() -> None:
    respx.get(f"{BASE}/html").respond(200, text="<html>ok</html>")
    assert api().call("GET", "/html", idempotent=True) == {}


# --------------------------------------------------------------------------------------------------
# Adapters without an external id: a create goes out again only when it never left
# --------------------------------------------------------------------------------------------------

REQUEST = parse_generation_request({"mode": "text-to-video", "prompt": "x"})


def evolink() -> EvoLinkProvider:
    return EvoLinkProvider(
        api_key="k", base_url="https://evolink.test", client=httpx.Client(), retry=NO_WAIT_RETRY
    )


def kling3api() -> Kling3ApiProvider:
    return Kling3ApiProvider(
        api_key="k", base_url="https://k3.test", client=httpx.Client(), retry=NO_WAIT_RETRY
    )


@respx.mock
def test_evolink_create_500_is_not_resent() -> None:
    route = respx.post("https://evolink.test/v1/videos/generations").respond(
        500, json={"error": {"code": "internal", "message": "boom"}}
    )
    with pytest.raises(ProviderError) as caught:
        evolink().submit(REQUEST, callback_url=None, external_task_id="gen_1")
    assert caught.value.kind == "retryable"
    assert route.call_count == 1


@respx.mock
def test_evolink_create_read_timeout_is_not_resent() -> None:
    route = respx.post("https://evolink.test/v1/videos/generations").mock(
        side_effect=httpx.ReadTimeout("slow")
    )
    with pytest.raises(ProviderError) as caught:
        evolink().submit(REQUEST, callback_url=None, external_task_id="gen_1")
    assert (caught.value.kind, caught.value.code) == ("retryable", "timeout")
    assert route.call_count == 1


@respx.mock
def test_kling3api_create_connect_error_is_resent() -> None:
    route = respx.post("https://k3.test/api/generate").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(200, json={"code": 200, "data": {"task_id": "n71a", "status": "IN_PROGRESS"}}),
        ]
    )
    assert kling3api().submit(REQUEST, callback_url=None, external_task_id="gen_1").task_id == "n71a"
    assert route.call_count == 2


@respx.mock
def test_kling3api_status_query_is_retried() -> None:
    route = respx.get("https://k3.test/api/status").mock(
        side_effect=[
            httpx.Response(500, json={"code": "INTERNAL_ERROR", "message": "x"}),
            httpx.Response(
                200, json={"code": 200, "data": {"task_id": "n71a", "status": "SUCCESS", "response": []}}
            ),
        ]
    )
    assert kling3api().query("n71a").task_id == "n71a"
    assert route.call_count == 2
