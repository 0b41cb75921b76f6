"""Router: cheapest-first plans, failover only on answers that prove no task was created, none on final
ones, pinning; and the registry that enables providers from credentials."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from kling_pipeline.config import Settings
from kling_pipeline.domain.pricing import Pricing
from kling_pipeline.domain.request import GenerationRequest, parse_generation_request
from kling_pipeline.errors import CreateUnconfirmed, InvalidInput, NoProviderAvailable, ProviderError
from kling_pipeline.providers import registry
from kling_pipeline.providers.base import Provider
from kling_pipeline.providers.base import ProviderName as P
from kling_pipeline.providers.evolink import EvoLinkProvider
from kling_pipeline.providers.http import NO_WAIT_RETRY, InsecureBaseUrl
from kling_pipeline.providers.kling import KlingProvider
from kling_pipeline.providers.kling3api import Kling3ApiProvider
from kling_pipeline.providers.router import Router, least_bad

KLING = "https://kling.test"
EVO = "https://evolink.test"
K3 = "https://k3.test"

KLING_CREATE = f"{KLING}/v1/videos/omni-video"
EVO_CREATE = f"{EVO}/v1/videos/generations"
K3_CREATE = f"{K3}/api/generate"


def req(**fields: Any) -> GenerationRequest:
    return parse_generation_request({"mode": "text-to-video", "prompt": "x", **fields})


def providers(*names: P) -> dict[P, Provider]:
    client = httpx.Client()
    built: dict[P, Provider] = {
        P.KLING: KlingProvider(
            access_key="ak", secret_key="sk-" + "x" * 32, base_url=KLING, client=client, retry=NO_WAIT_RETRY
        ),
        P.EVOLINK: EvoLinkProvider(api_key="e", base_url=EVO, client=client, retry=NO_WAIT_RETRY),
        P.KLING3API: Kling3ApiProvider(api_key="k", base_url=K3, client=client, retry=NO_WAIT_RETRY),
    }
    return {name: built[name] for name in (names or tuple(P))}


def router(*names: P, usd_per_credit: float | None = None) -> Router:
    return Router(providers(*names), Pricing(usd_per_credit=usd_per_credit))


def callback_for(name: P) -> str | None:
    return None if name is P.KLING3API else f"https://api.example.com/v1/callbacks/{name.value}/gen_1?token=t"


def kling_ok() -> httpx.Response:
    return httpx.Response(
        200, json={"code": 0, "message": "SUCCEED", "data": {"task_id": "tk_1", "task_status": "submitted"}}
    )


def evo_ok() -> httpx.Response:
    return httpx.Response(200, json={"id": "task-unified-1", "status": "pending", "progress": 0})


def k3_ok() -> httpx.Response:
    return httpx.Response(200, json={"code": 200, "data": {"task_id": "n71a", "status": "IN_PROGRESS"}})


def kling_error(http: int, code: int) -> httpx.Response:
    return httpx.Response(http, json={"code": code, "message": f"error {code}", "request_id": "r"})


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment: a developer's exported keys must not leak into these tests."""
    for name in (
        "KLING_ACCESS_KEY",
        "KLING_SECRET_KEY",
        "EVOLINK_API_KEY",
        "KLING3API_API_KEY",
        "PROVIDER_SECRET_NAME",
        "SIGNING_SECRET_NAME",
        "LOCAL_ALLOW_HTTP_LOOPBACK",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as routes:
        # Kling's submit looks its task up after an ambiguous failure: nothing there.
        routes.get(url__regex=rf"{KLING}/v1/videos/.*").respond(
            404, json={"code": 1203, "message": "not found"}
        )
        yield routes


# --------------------------------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------------------------------


def test_plan_is_cheapest_first() -> None:
    names = [p.name for p in router().plan(req())]
    assert names == [P.EVOLINK, P.KLING, P.KLING3API]  # $0.375, $0.42, credits without a USD value


def test_plan_ranks_credits_when_converted() -> None:
    names = [p.name for p in router(usd_per_credit=0.001).plan(req())]
    assert names == [P.KLING3API, P.EVOLINK, P.KLING]


def test_plan_skips_providers_that_cannot_run_the_request() -> None:
    long_prompt = req(prompt="x" * 2100)  # over kling3api's 2000
    assert [p.name for p in router(usd_per_credit=0.001).plan(long_prompt)] == [P.EVOLINK, P.KLING]
    shots = req(prompt=None, shots=[{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 3}])
    assert P.KLING3API not in [p.name for p in router(usd_per_credit=0.001).plan(shots)]
    four_k = req(quality="4k")
    assert [p.name for p in router().plan(four_k)] == [P.EVOLINK]
    o1 = req(model="kling-o1")
    assert [p.name for p in router().plan(o1)] == [P.KLING]


def test_no_candidate_names_every_reason() -> None:
    with pytest.raises(NoProviderAvailable) as caught:
        router(P.EVOLINK, P.KLING3API).plan(req(model="kling-o1"))
    assert "evolink" in caught.value.message and "kling3api" in caught.value.message


def test_no_provider_enabled() -> None:
    with pytest.raises(NoProviderAvailable) as caught:
        Router({}, Pricing()).plan(req())
    assert "no provider is enabled" in caught.value.message


# --------------------------------------------------------------------------------------------------
# pinned provider
# --------------------------------------------------------------------------------------------------


def test_pinned_provider_is_honoured() -> None:
    assert [p.name for p in router().plan(req(provider="kling3api"))] == [P.KLING3API]


def test_pinned_provider_not_enabled() -> None:
    with pytest.raises(InvalidInput) as caught:
        router(P.EVOLINK).plan(req(provider="kling"))
    assert caught.value.details[0].field == "provider"
    assert "not enabled" in caught.value.details[0].issue


def test_pinned_provider_that_cannot_run_the_request() -> None:
    with pytest.raises(InvalidInput) as caught:
        router().plan(req(provider="kling3api", prompt="x" * 2100))
    assert caught.value.details[0].field == "provider"
    assert "2000" in caught.value.details[0].issue


def test_pinned_provider_unknown_name() -> None:
    request = req().model_copy(update={"provider": "acme"})  # validation would refuse it first
    with pytest.raises(InvalidInput) as caught:
        router().plan(request)
    assert caught.value.details[0].field == "provider"


def test_pinned_provider_failure_does_not_fail_over(mock: respx.MockRouter) -> None:
    k3 = mock.post(K3_CREATE).respond(500, json={"code": "INTERNAL_ERROR", "message": "x"})
    evo = mock.post(EVO_CREATE).mock(return_value=evo_ok())
    with pytest.raises(ProviderError) as caught:
        router().submit(req(provider="kling3api"), callback_url_for=callback_for, external_task_id="gen_1")
    assert caught.value.provider == "kling3api"
    assert (k3.call_count, evo.call_count) == (1, 0)


# --------------------------------------------------------------------------------------------------
# submit and failover
# --------------------------------------------------------------------------------------------------


def test_first_choice_succeeds(mock: respx.MockRouter) -> None:
    evo = mock.post(EVO_CREATE).mock(return_value=evo_ok())
    kling = mock.post(KLING_CREATE).mock(return_value=kling_ok())
    name, task = router().submit(req(), callback_url_for=callback_for, external_task_id="gen_1")
    assert (name, task.task_id) == (P.EVOLINK, "task-unified-1")
    assert (evo.call_count, kling.call_count) == (1, 0)
    assert b"/v1/callbacks/evolink/gen_1" in evo.calls.last.request.content


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(429, json={"error": {"code": "rate_limit", "message": "slow down"}}),
        httpx.Response(402, json={"error": {"code": "insufficient_quota", "message": "top up"}}),
        httpx.Response(401, json={"error": {"code": "invalid_api_key", "message": "who are you"}}),
        httpx.Response(403, json={"error": {"code": "forbidden", "message": "no"}}),
    ],
)
def test_fails_over_to_the_next_cheapest_when_no_task_was_created(
    mock: respx.MockRouter, failure: httpx.Response
) -> None:
    evo = mock.post(EVO_CREATE).mock(return_value=failure)
    kling = mock.post(KLING_CREATE).mock(return_value=kling_ok())
    name, task = router().submit(req(), callback_url_for=callback_for, external_task_id="gen_1")
    assert (name, task.task_id) == (P.KLING, "tk_1")
    assert (evo.call_count, kling.call_count) == (1, 1)
    assert b"/v1/callbacks/kling/gen_1" in kling.calls.last.request.content


def test_fails_over_when_the_create_never_left(mock: respx.MockRouter) -> None:
    evo = mock.post(EVO_CREATE).mock(side_effect=httpx.ConnectError("refused"))
    kling = mock.post(KLING_CREATE).mock(return_value=kling_ok())
    name, _ = router().submit(req(), callback_url_for=callback_for, external_task_id="gen_1")
    assert name is P.KLING
    assert (evo.call_count, kling.call_count) == (3, 1)  # re-sent: it provably never arrived


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"error": {"code": "internal", "message": "boom"}}),
        httpx.Response(503, text="unavailable"),
        httpx.ReadTimeout("no answer"),
        httpx.RemoteProtocolError("connection cut"),
    ],
)
def test_no_failover_when_the_create_may_have_landed(
    mock: respx.MockRouter, failure: httpx.Response | Exception
) -> None:
    evo = mock.post(EVO_CREATE)
    if isinstance(failure, Exception):
        evo.mock(side_effect=failure)
    else:
        evo.mock(return_value=failure)
    kling = mock.post(KLING_CREATE).mock(return_value=kling_ok())
    with pytest.raises(CreateUnconfirmed) as caught:
        router().submit(req(), callback_url_for=callback_for, external_task_id="gen_1")
    assert caught.value.provider == "evolink"
    assert (evo.call_count, kling.call_count) == (1, 0)  # never re-sent, never sent elsewhere


class RecordingAdmission:
    """The router's `Admission` as services/capacity.py plays it, recording what was taken and given back
    (the slots themselves are tested in test_slots.py and through the local stack)."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.given_back: list[tuple[str, str]] = []

    def take(self, provider: Provider) -> Provider | None:
        self.taken.append(provider.name.value)
        return provider

    def give_back(self, provider: Provider, error: ProviderError) -> None:
        self.given_back.append((provider.name.value, error.kind))


def test_a_slot_is_given_back_only_when_the_create_provably_made_no_task(mock: respx.MockRouter) -> None:
    mock.post(EVO_CREATE).mock(return_value=httpx.Response(429, json={"error": {"code": "rate_limit"}}))
    mock.post(KLING_CREATE).mock(return_value=kling_ok())
    admission = RecordingAdmission()
    name, _ = router().submit(
        req(), callback_url_for=callback_for, external_task_id="gen_1", admission=admission
    )
    assert name is P.KLING
    assert admission.taken == ["evolink", "kling"]
    assert admission.given_back == [("evolink", "throttled")]  # the refused one; kling's slot stays held


def test_an_unconfirmed_create_keeps_its_slot(mock: respx.MockRouter) -> None:
    mock.post(EVO_CREATE).mock(side_effect=httpx.ReadTimeout("no answer"))
    kling = mock.post(KLING_CREATE).mock(return_value=kling_ok())
    admission = RecordingAdmission()
    with pytest.raises(CreateUnconfirmed):
        router().submit(req(), callback_url_for=callback_for, external_task_id="gen_1", admission=admission)
    # The task may exist and run at EvoLink: its slot is not given back, and no other provider is tried.
    assert (admission.taken, admission.given_back, kling.call_count) == (["evolink"], [], 0)


def test_a_provider_without_a_free_slot_is_skipped_and_the_generation_waits(mock: respx.MockRouter) -> None:
    class Full(RecordingAdmission):
        def take(self, provider: Provider) -> Provider | None:
            self.taken.append(provider.name.value)
            return None

    evo = mock.post(EVO_CREATE).mock(return_value=evo_ok())
    with pytest.raises(ProviderError) as caught:
        router(P.EVOLINK).submit(req(), callback_url_for=callback_for, external_task_id="g", admission=Full())
    assert (caught.value.kind, caught.value.code, evo.call_count) == ("throttled", "no_capacity", 0)


def test_fails_over_on_kling_concurrency_limit(mock: respx.MockRouter) -> None:
    kling = mock.post(KLING_CREATE).mock(return_value=kling_error(429, 1303))
    k3 = mock.post(K3_CREATE).mock(return_value=k3_ok())
    name, task = router(P.KLING, P.KLING3API).submit(
        req(), callback_url_for=callback_for, external_task_id="g"
    )
    assert (name, task.task_id) == (P.KLING3API, "n71a")
    assert (kling.call_count, k3.call_count) == (1, 1)
    assert b"callback_url" not in k3.calls.last.request.content


def test_kling_server_errors_stay_at_kling_after_its_lookups(mock: respx.MockRouter) -> None:
    kling = mock.post(KLING_CREATE).mock(return_value=kling_error(500, 5000))
    k3 = mock.post(K3_CREATE).mock(return_value=k3_ok())
    with pytest.raises(CreateUnconfirmed) as caught:
        router(P.KLING, P.KLING3API).submit(req(), callback_url_for=callback_for, external_task_id="g")
    assert caught.value.provider == "kling"
    assert kling.call_count == 3  # retried, each time after looking the task up by our id
    assert k3.call_count == 0


def test_a_refusal_after_an_ambiguous_kling_attempt_is_still_unconfirmed(mock: respx.MockRouter) -> None:
    kling = mock.post(KLING_CREATE).mock(side_effect=[kling_error(500, 5000), kling_error(429, 1303)])
    k3 = mock.post(K3_CREATE).mock(return_value=k3_ok())
    with pytest.raises(CreateUnconfirmed):
        router(P.KLING, P.KLING3API).submit(req(), callback_url_for=callback_for, external_task_id="g")
    assert (kling.call_count, k3.call_count) == (2, 0)


@pytest.mark.parametrize(
    ("http", "code", "ours"), [(400, 1301, "content_policy"), (400, 1201, "bad_request")]
)
def test_no_failover_on_final_answers(mock: respx.MockRouter, http: int, code: int, ours: str) -> None:
    kling = mock.post(KLING_CREATE).mock(return_value=kling_error(http, code))
    k3 = mock.post(K3_CREATE).mock(return_value=k3_ok())
    with pytest.raises(ProviderError) as caught:
        router(P.KLING, P.KLING3API).submit(req(), callback_url_for=callback_for, external_task_id="g")
    assert (caught.value.kind, caught.value.code) == ("final", ours)
    assert (kling.call_count, k3.call_count) == (1, 0)


def test_all_failed_with_one_throttled_raises_throttled(mock: respx.MockRouter) -> None:
    mock.post(EVO_CREATE).respond(402, json={"error": {"code": "quota", "message": "top up"}})
    mock.post(KLING_CREATE).mock(return_value=kling_error(429, 1303))
    mock.post(K3_CREATE).respond(402, json={"code": "INSUFFICIENT_CREDITS", "message": "x"})
    with pytest.raises(ProviderError) as caught:
        router().submit(req(), callback_url_for=callback_for, external_task_id="g")
    assert (caught.value.kind, caught.value.code, caught.value.provider) == (
        "throttled",
        "concurrency_limited",
        "kling",
    )


def test_all_refused_retryable_raises_retryable(mock: respx.MockRouter) -> None:
    mock.post(EVO_CREATE).mock(side_effect=httpx.ConnectError("refused"))
    mock.post(KLING_CREATE).mock(return_value=kling_error(403, 1101))
    mock.post(K3_CREATE).respond(402, json={"code": "INSUFFICIENT_CREDITS", "message": "x"})
    with pytest.raises(ProviderError) as caught:
        router().submit(req(), callback_url_for=callback_for, external_task_id="g")
    assert caught.value.kind == "retryable"
    assert not isinstance(caught.value, CreateUnconfirmed)


def test_least_bad_prefers_throttled() -> None:
    retry = ProviderError("a", "retryable", "provider_error", "x")
    busy = ProviderError("b", "throttled", "rate_limited", "x")
    assert least_bad([retry, busy, retry]) is busy
    assert least_bad([retry]) is retry


def test_estimate_marks_adapter_unsupported() -> None:
    result = router().estimate(req(prompt="x" * 2100))
    k3 = next(q for q in result.quotes if q.provider is P.KLING3API)
    assert not k3.supported and k3.reason is not None and "2000" in k3.reason
    assert result.chosen is P.EVOLINK


# --------------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------------


def test_enabled_providers_follow_credentials() -> None:
    client = httpx.Client()
    assert registry.enabled_providers(Settings(), client) == {}
    settings = Settings(
        kling_access_key="ak", kling_secret_key="sk", evolink_api_key="e", kling3api_api_key=None
    )
    assert list(registry.enabled_providers(settings, client)) == [P.KLING, P.EVOLINK]
    half = Settings(kling_access_key="ak")  # a secret key is needed too
    assert registry.enabled_providers(half, client) == {}


def test_enabled_providers_check_base_urls() -> None:
    client = httpx.Client()
    local = Settings(
        evolink_api_key="e", evolink_api_base_url="http://127.0.0.1:9100", local_allow_http_loopback=True
    )
    assert list(registry.enabled_providers(local, client)) == [P.EVOLINK]
    with pytest.raises(InsecureBaseUrl):
        registry.enabled_providers(
            Settings(evolink_api_key="e", evolink_api_base_url="http://127.0.0.1:9100"), client
        )


def test_get_providers_is_lazy_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    from kling_pipeline.config import reset_settings

    monkeypatch.setenv("KLING3API_API_KEY", "k")
    reset_settings()
    registry.reset_providers()
    try:
        first = registry.get_providers()
        assert list(first) == [P.KLING3API]
        assert registry.get_providers() is first
        assert registry.get_router().providers == first
    finally:
        registry.reset_providers()
        reset_settings()
