"""Adapters: request bodies, status/error tables, Kling's JWT and create-then-look-up (docs/providers.md)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest
import respx

from kling_pipeline.domain.request import GenerationRequest, parse_generation_request
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import ProviderError
from kling_pipeline.providers import evolink, kling, kling3api
from kling_pipeline.providers.base import ElementSpec, ProviderElement, ProviderName
from kling_pipeline.providers.evolink import EvoLinkProvider
from kling_pipeline.providers.http import NO_WAIT_RETRY
from kling_pipeline.providers.kling import KlingProvider
from kling_pipeline.providers.kling3api import Kling3ApiProvider

KLING_URL = "https://kling.test"
EVOLINK_URL = "https://evolink.test"
K3_URL = "https://k3.test"
AK, SK = "access-key", "secret-key-with-enough-length-for-hs256"
CALLBACK = "https://api.example.com/v1/callbacks/kling/gen_1?token=t"
IMG = [f"https://cdn.example.com/img{i}.png" for i in range(1, 5)]
VIDEO = "https://cdn.example.com/clip.mp4"


def req(**fields: Any) -> GenerationRequest:
    return parse_generation_request(fields)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> httpx.Client:
    return httpx.Client()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kling_provider(client: httpx.Client, clock: Clock) -> KlingProvider:
    return KlingProvider(
        access_key=AK, secret_key=SK, base_url=KLING_URL, client=client, retry=NO_WAIT_RETRY, clock=clock
    )


@pytest.fixture
def evolink_provider(client: httpx.Client) -> EvoLinkProvider:
    return EvoLinkProvider(api_key="evo-key", base_url=EVOLINK_URL, client=client, retry=NO_WAIT_RETRY)


@pytest.fixture
def k3_provider(client: httpx.Client) -> Kling3ApiProvider:
    return Kling3ApiProvider(api_key="k3-key", base_url=K3_URL, client=client, retry=NO_WAIT_RETRY)


def kling_envelope(data: Any, code: int = 0, message: str = "SUCCEED") -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": "req-1", "data": data}


def kling_task(task_id: str = "tk_1", status: str = "submitted", **extra: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "task_status": status,
        "task_info": {"external_task_id": "gen_1"},
        "created_at": 1722769557708,
        "updated_at": 1722769557708,
        **extra,
    }


def sent_json(route: respx.Route, index: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls[index].request.content)
    return body


# ==================================================================================================
# Kling (official): request mapping
# ==================================================================================================


class TestKlingMapping:
    def build(self, provider: KlingProvider, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        return provider.build_submit(request, callback_url=CALLBACK, external_task_id="gen_1")

    def test_text_to_video_o3(self, kling_provider: KlingProvider) -> None:
        path, body = self.build(kling_provider, req(mode="text-to-video", prompt="A fox", duration=7))
        assert path == "/v1/videos/omni-video"
        assert body == {
            "model_name": "kling-v3-omni",
            "multi_shot": False,
            "prompt": "A fox",
            "mode": "std",
            "sound": "off",
            "watermark_info": {"enabled": False},
            "external_task_id": "gen_1",
            "duration": "7",
            "callback_url": CALLBACK,
            "aspect_ratio": "16:9",
        }

    def test_o1_model_name_and_pro_sound(self, kling_provider: KlingProvider) -> None:
        _, body = self.build(kling_provider, req(model="kling-o1", mode="text-to-video", prompt="x"))
        assert body["model_name"] == "kling-video-o1"
        _, body = self.build(
            kling_provider, req(mode="text-to-video", prompt="x", quality="1080p", sound=True, watermark=True)
        )
        assert (body["mode"], body["sound"], body["watermark_info"]) == ("pro", "on", {"enabled": True})

    def test_image_to_video_first_and_end_frame(self, kling_provider: KlingProvider) -> None:
        request = req(mode="image-to-video", prompt="turns", first_frame=IMG[0], end_frame=IMG[1])
        _, body = self.build(kling_provider, request)
        assert body["image_list"] == [
            {"image_url": IMG[0], "type": "first_frame"},
            {"image_url": IMG[1], "type": "end_frame"},
        ]
        assert "aspect_ratio" not in body  # follows the first frame
        assert body["duration"] == "5"

    def test_reference_images_elements_and_feature_video(self, kling_provider: KlingProvider) -> None:
        request = req(
            mode="reference-to-video",
            prompt="@Image1 meets @Element1 in the style of <<<video_1>>>",
            reference_images=IMG[:2],
            elements=[{"element_id": "123456"}],
            video={"url": VIDEO, "keep_original_sound": False},
            aspect_ratio="9:16",
            duration=5,
        )
        _, body = self.build(kling_provider, request)
        assert body["prompt"] == "<<<image_1>>> meets <<<element_1>>> in the style of <<<video_1>>>"
        assert body["image_list"] == [{"image_url": IMG[0]}, {"image_url": IMG[1]}]
        assert body["element_list"] == [{"element_id": "123456"}]
        assert body["video_list"] == [
            {"video_url": VIDEO, "refer_type": "feature", "keep_original_sound": "no"}
        ]
        assert body["sound"] == "off"
        assert body["aspect_ratio"] == "9:16"

    def test_reference_images_come_before_frames(self, kling_provider: KlingProvider) -> None:
        request = req(
            mode="image-to-video", prompt="<<<image_1>>>", first_frame=IMG[0], reference_images=[IMG[2]]
        )
        _, body = self.build(kling_provider, request)
        assert body["image_list"] == [{"image_url": IMG[2]}, {"image_url": IMG[0], "type": "first_frame"}]

    def test_video_edit_is_base_without_duration(self, kling_provider: KlingProvider) -> None:
        request = req(mode="video-edit", prompt="snowy background", video={"url": VIDEO})
        _, body = self.build(kling_provider, request)
        assert body["video_list"] == [
            {"video_url": VIDEO, "refer_type": "base", "keep_original_sound": "yes"}
        ]
        assert "duration" not in body
        assert "aspect_ratio" not in body

    def test_multi_shot(self, kling_provider: KlingProvider) -> None:
        request = req(
            mode="text-to-video",
            shots=[{"prompt": "Scene one", "duration": 3}, {"prompt": "Scene two", "duration": 2}],
        )
        _, body = self.build(kling_provider, request)
        assert body["multi_shot"] is True
        assert body["shot_type"] == "customize"
        assert body["multi_prompt"] == [
            {"index": 1, "prompt": "Scene one", "duration": "3"},
            {"index": 2, "prompt": "Scene two", "duration": "2"},
        ]
        assert "prompt" not in body
        assert body["duration"] == "5"

    def test_no_callback_url_when_none(self, kling_provider: KlingProvider) -> None:
        _, body = kling_provider.build_submit(
            req(mode="text-to-video", prompt="x"), callback_url=None, external_task_id="gen_9"
        )
        assert "callback_url" not in body
        assert body["external_task_id"] == "gen_9"

    def test_kling_3_text2video(self, kling_provider: KlingProvider) -> None:
        request = req(
            model="kling-3.0", mode="text-to-video", prompt="x", negative_prompt="blur", cfg_scale=0.7
        )
        path, body = self.build(kling_provider, request)
        assert path == "/v1/videos/text2video"
        assert body["model_name"] == "kling-v3"
        assert (body["negative_prompt"], body["cfg_scale"], body["aspect_ratio"]) == ("blur", 0.7, "16:9")
        assert "image_list" not in body

    def test_kling_3_image2video(self, kling_provider: KlingProvider) -> None:
        request = req(
            model="kling-3.0",
            mode="image-to-video",
            prompt="x",
            first_frame=IMG[0],
            end_frame=IMG[1],
            elements=[{"element_id": "7"}],
        )
        path, body = self.build(kling_provider, request)
        assert path == "/v1/videos/image2video"
        assert (body["image"], body["image_tail"]) == (IMG[0], IMG[1])
        assert body["element_list"] == [{"element_id": "7"}]
        assert "aspect_ratio" not in body
        assert "image_list" not in body

    def test_unsupported(self, kling_provider: KlingProvider) -> None:
        assert kling_provider.unsupported_reason(req(mode="text-to-video", prompt="x", quality="4k"))
        assert kling_provider.unsupported_reason(req(mode="text-to-video", prompt="x")) is None
        assert kling_provider.supports_cancel is False
        assert kling_provider.cancel("tk_1") is False

    def test_omni_without_a_prompt_goes_elsewhere(self, kling_provider: KlingProvider) -> None:
        # Seed 003: the omni prompt must not be empty unless multi_shot is on; other providers take it.
        no_prompt = req(mode="image-to-video", first_frame=IMG[0])
        assert kling_provider.unsupported_reason(no_prompt) == "the official omni endpoint needs a prompt"
        shots = req(
            mode="text-to-video", shots=[{"prompt": "a", "duration": 3}, {"prompt": "b", "duration": 2}]
        )
        assert kling_provider.unsupported_reason(shots) is None


# ==================================================================================================
# Kling: auth
# ==================================================================================================


class TestKlingJwt:
    def test_claims_and_header(self, kling_provider: KlingProvider, clock: Clock) -> None:
        token = kling_provider.signer.token()
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "HS256", "typ": "JWT"}
        claims = jwt.decode(
            token, SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
        )
        now = int(clock.now)
        assert claims == {"iss": AK, "exp": now + 1800, "nbf": now - 5}

    def test_token_is_reused_then_refreshed(self, kling_provider: KlingProvider, clock: Clock) -> None:
        first = kling_provider.signer.token()
        clock.now += 1800 - 301  # still more than 5 minutes left
        assert kling_provider.signer.token() == first
        clock.now += 2  # inside the 5-minute margin
        second = kling_provider.signer.token()
        assert second != first
        claims = jwt.decode(
            second, SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
        )
        assert claims["exp"] == int(clock.now) + 1800

    @respx.mock
    def test_bearer_header_on_requests(self, kling_provider: KlingProvider) -> None:
        route = respx.get(f"{KLING_URL}/v1/videos/omni-video/tk_1").respond(
            json=kling_envelope(kling_task(status="processing"))
        )
        kling_provider.query("tk_1")
        kling_provider.query("tk_1")
        auth = [call.request.headers["Authorization"] for call in route.calls]
        assert auth[0] == auth[1] == f"Bearer {kling_provider.signer.token()}"
        jwt.decode(
            auth[0].split()[1], SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
        )


# ==================================================================================================
# Kling: responses, statuses, errors
# ==================================================================================================


@pytest.mark.parametrize(
    ("wire", "status", "progress"),
    [
        ("submitted", Status.SUBMITTED, 0),
        ("processing", Status.PROCESSING, 50),
        ("succeed", Status.SUCCEEDED, 100),
        ("failed", Status.FAILED, None),
    ],
)
def test_kling_status_mapping(wire: str, status: Status, progress: int | None) -> None:
    task = kling.parse_task(kling_task(status=wire))
    assert (task.status, task.progress) == (status, progress)


def test_kling_parse_succeeded_task() -> None:
    task = kling.parse_task(
        kling_task(
            status="succeed",
            final_unit_deduction="5",
            task_result={"videos": [{"id": "v1", "url": "https://cdn/v1.mp4", "duration": "5.0"}]},
        )
    )
    assert task.provider is ProviderName.KLING
    assert task.outputs[0].url == "https://cdn/v1.mp4"
    assert task.outputs[0].duration_s == 5.0
    assert task.cost is not None and task.cost.credits == Decimal("5")
    assert task.external_task_id == "gen_1"


def test_kling_parse_failed_task() -> None:
    task = kling.parse_task(kling_task(status="failed", task_status_msg="risk control"))
    assert task.error is not None and task.error.message == "risk control"


@pytest.mark.parametrize(
    ("code", "http", "kind", "ours"),
    [
        (1000, 401, "final", "auth"),
        (1004, 401, "final", "auth"),
        (1101, 403, "retryable", "account_error"),
        (1102, 429, "retryable", "account_error"),
        (1103, 403, "retryable", "account_error"),
        (1200, 400, "final", "bad_request"),
        (1201, 400, "final", "bad_request"),
        (1203, 404, "final", "bad_request"),
        (1300, 400, "final", "content_policy"),
        (1301, 400, "final", "content_policy"),
        (1302, 429, "throttled", "rate_limited"),
        (1303, 429, "throttled", "concurrency_limited"),
        (5000, 500, "retryable", "provider_error"),
        (5001, 503, "retryable", "provider_error"),
        (5002, 504, "retryable", "provider_error"),
    ],
)
def test_kling_error_table(code: int, http: int, kind: str, ours: str) -> None:
    error = kling.classify_response(
        httpx.Response(http, json={"code": code, "message": "m"}), {"code": code, "message": "m"}
    )
    assert error is not None
    assert (error.kind, error.code, error.provider_code, error.http_status) == (kind, ours, str(code), http)


def test_kling_success_envelope_is_no_error() -> None:
    assert kling.classify_response(httpx.Response(200), kling_envelope({})) is None


def test_kling_non_json_5xx_is_retryable() -> None:
    error = kling.classify_response(httpx.Response(502, text="<html>bad gateway</html>"), {})
    assert error is not None and (error.kind, error.code) == ("retryable", "provider_error")


def test_kling_parse_callback() -> None:
    provider_body = kling_task(task_id="tk_77", status="succeed")
    assert KlingProvider.parse_callback(object.__new__(KlingProvider), provider_body) == "tk_77"


# ==================================================================================================
# Kling: submit never makes two paid tasks
# ==================================================================================================


class TestKlingSubmit:
    @respx.mock
    def test_500_then_lookup_finds_task_means_one_create(self, kling_provider: KlingProvider) -> None:
        create = respx.post(f"{KLING_URL}/v1/videos/omni-video").respond(
            500, json={"code": 5000, "message": "server error"}
        )
        lookup = respx.get(f"{KLING_URL}/v1/videos/omni-video/gen_1").respond(
            json=kling_envelope(kling_task(task_id="tk_1", status="submitted"))
        )
        task = kling_provider.submit(
            req(mode="text-to-video", prompt="x"), callback_url=CALLBACK, external_task_id="gen_1"
        )
        assert create.call_count == 1
        assert lookup.call_count == 1
        assert task.task_id == "tk_1"

    @respx.mock
    def test_read_timeout_then_lookup_finds_task(self, kling_provider: KlingProvider) -> None:
        create = respx.post(f"{KLING_URL}/v1/videos/omni-video").mock(side_effect=httpx.ReadTimeout("slow"))
        respx.get(f"{KLING_URL}/v1/videos/omni-video/gen_1").respond(json=kling_envelope(kling_task()))
        task = kling_provider.submit(
            req(mode="text-to-video", prompt="x"), callback_url=None, external_task_id="gen_1"
        )
        assert create.call_count == 1
        assert task.task_id == "tk_1"

    @respx.mock
    def test_500_then_not_found_resubmits(self, kling_provider: KlingProvider) -> None:
        create = respx.post(f"{KLING_URL}/v1/videos/omni-video").mock(
            side_effect=[
                httpx.Response(500, json={"code": 5000, "message": "server error"}),
                httpx.Response(200, json=kling_envelope(kling_task(task_id="tk_2"))),
            ]
        )
        lookup = respx.get(f"{KLING_URL}/v1/videos/omni-video/gen_1").respond(
            404, json={"code": 1203, "message": "task not found"}
        )
        task = kling_provider.submit(
            req(mode="text-to-video", prompt="x"), callback_url=None, external_task_id="gen_1"
        )
        assert (create.call_count, lookup.call_count, task.task_id) == (2, 1, "tk_2")

    @respx.mock
    def test_connect_error_retries_without_lookup(self, kling_provider: KlingProvider) -> None:
        create = respx.post(f"{KLING_URL}/v1/videos/omni-video").mock(
            side_effect=[
                httpx.ConnectError("refused"),
                httpx.Response(200, json=kling_envelope(kling_task())),
            ]
        )
        lookup = respx.get(f"{KLING_URL}/v1/videos/omni-video/gen_1")
        kling_provider.submit(
            req(mode="text-to-video", prompt="x"), callback_url=None, external_task_id="gen_1"
        )
        assert (create.call_count, lookup.call_count) == (2, 0)

    @respx.mock
    def test_persistent_500_gives_up_after_a_last_lookup(self, kling_provider: KlingProvider) -> None:
        create = respx.post(f"{KLING_URL}/v1/videos/omni-video").respond(
            500, json={"code": 5000, "message": "server error"}
        )
        lookup = respx.get(f"{KLING_URL}/v1/videos/omni-video/gen_1").respond(
            404, json={"code": 1203, "message": "not found"}
        )
        with pytest.raises(ProviderError) as caught:
            kling_provider.submit(
                req(mode="text-to-video", prompt="x"), callback_url=None, external_task_id="gen_1"
            )
        assert (caught.value.kind, caught.value.code) == ("retryable", "provider_error")
        assert create.call_count == 3
        assert lookup.call_count == 3  # before attempts 2 and 3, and once more before giving up

    @respx.mock
    def test_concurrency_limit_is_not_retried(self, kling_provider: KlingProvider) -> None:
        create = respx.post(f"{KLING_URL}/v1/videos/omni-video").respond(
            429, json={"code": 1303, "message": "parallel task over resource pack limit"}
        )
        with pytest.raises(ProviderError) as caught:
            kling_provider.submit(
                req(mode="text-to-video", prompt="x"), callback_url=None, external_task_id="gen_1"
            )
        assert (caught.value.kind, caught.value.code) == ("throttled", "concurrency_limited")
        assert create.call_count == 1

    @respx.mock
    def test_content_policy_is_final(self, kling_provider: KlingProvider) -> None:
        create = respx.post(f"{KLING_URL}/v1/videos/omni-video").respond(
            400, json={"code": 1301, "message": "content policy"}
        )
        with pytest.raises(ProviderError) as caught:
            kling_provider.submit(
                req(mode="text-to-video", prompt="x"), callback_url=None, external_task_id="gen_1"
            )
        assert (caught.value.kind, caught.value.code) == ("final", "content_policy")
        assert create.call_count == 1

    @respx.mock
    def test_submit_sends_the_built_body(self, kling_provider: KlingProvider) -> None:
        create = respx.post(f"{KLING_URL}/v1/videos/text2video").respond(json=kling_envelope(kling_task()))
        request = req(model="kling-3.0", mode="text-to-video", prompt="x")
        kling_provider.submit(request, callback_url=CALLBACK, external_task_id="gen_1")
        _, expected = kling_provider.build_submit(request, callback_url=CALLBACK, external_task_id="gen_1")
        assert sent_json(create) == expected


class TestKlingQuery:
    @respx.mock
    def test_query_probes_endpoints_until_found(self, kling_provider: KlingProvider) -> None:
        omni = respx.get(f"{KLING_URL}/v1/videos/omni-video/tk_9").respond(
            404, json={"code": 1203, "message": "not found"}
        )
        t2v = respx.get(f"{KLING_URL}/v1/videos/text2video/tk_9").respond(
            json=kling_envelope(kling_task(task_id="tk_9", status="processing"))
        )
        task = kling_provider.query("tk_9")
        assert task.status is Status.PROCESSING
        assert (omni.call_count, t2v.call_count) == (1, 1)
        kling_provider.query("tk_9")  # remembered: straight to text2video
        assert (omni.call_count, t2v.call_count) == (1, 2)

    @respx.mock
    def test_query_unknown_task_is_final_not_found(self, kling_provider: KlingProvider) -> None:
        respx.get(url__regex=rf"{KLING_URL}/v1/videos/.*").respond(
            404, json={"code": 1203, "message": "nope"}
        )
        with pytest.raises(ProviderError) as caught:
            kling_provider.query("nope")
        assert (caught.value.kind, caught.value.code) == ("final", "not_found")
        assert kling_provider.find_by_external_id("nope") is None

    @respx.mock
    def test_find_by_external_id(self, kling_provider: KlingProvider) -> None:
        respx.get(f"{KLING_URL}/v1/videos/omni-video/gen_1").respond(json=kling_envelope(kling_task()))
        found = kling_provider.find_by_external_id("gen_1")
        assert found is not None and found.external_task_id == "gen_1"

    @respx.mock
    def test_find_by_external_id_asks_only_the_endpoint_the_request_went_to(
        self, kling_provider: KlingProvider
    ) -> None:
        lookups = respx.get(url__regex=rf"{KLING_URL}/v1/videos/.*/gen_2").respond(
            404, json={"code": 1203, "message": "nope"}
        )
        text = req(model="kling-3.0", mode="text-to-video", prompt="x")
        assert kling_provider.find_by_external_id("gen_2", text) is None
        assert [call.request.url.path for call in lookups.calls] == ["/v1/videos/text2video/gen_2"]


class TestKlingElements:
    @respx.mock
    def test_create_get_delete(self, kling_provider: KlingProvider) -> None:
        create = respx.post(f"{KLING_URL}/v1/general/advanced-custom-elements").respond(
            json=kling_envelope({"task_id": "el_task", "task_status": "submitted"})
        )
        spec = ElementSpec(
            name="Hero", description="our hero", frontal_image=IMG[0], reference_images=[IMG[1]]
        )
        element = kling_provider.create_element(spec, external_id="elm_1")
        assert sent_json(create) == {
            "element_name": "Hero",
            "element_description": "our hero",
            "reference_type": "image_refer",
            "element_image_list": {"frontal_image": IMG[0], "refer_images": [{"image_url": IMG[1]}]},
            "external_task_id": "elm_1",
        }
        assert (element.task_id, element.status, element.element_id) == ("el_task", "submitted", None)

        respx.get(f"{KLING_URL}/v1/general/advanced-custom-elements/el_task").respond(
            json=kling_envelope(
                {
                    "task_id": "el_task",
                    "task_status": "succeed",
                    "task_result": {"elements": [{"element_id": 123456789, "element_name": "Hero"}]},
                }
            )
        )
        ready = kling_provider.get_element(element)
        assert (ready.status, ready.element_id) == ("ready", "123456789")

        delete = respx.post(f"{KLING_URL}/v1/general/delete-elements").respond(json=kling_envelope({}))
        kling_provider.delete_element(ready)
        assert sent_json(delete) == {"element_id": "123456789"}


# ==================================================================================================
# EvoLink
# ==================================================================================================


class TestEvoLinkMapping:
    def build(self, provider: EvoLinkProvider, request: GenerationRequest) -> dict[str, Any]:
        path, body = provider.build_submit(request, callback_url=CALLBACK, external_task_id="gen_1")
        assert path == "/v1/videos/generations"
        return body

    def test_text_to_video(self, evolink_provider: EvoLinkProvider) -> None:
        body = self.build(evolink_provider, req(mode="text-to-video", prompt="A fox", duration=8))
        assert body == {
            "model": "kling-o3-text-to-video",
            "prompt": "A fox",
            "duration": 8,
            "aspect_ratio": "16:9",
            "quality": "720p",
            "sound": "off",
            "callback_url": CALLBACK,
            "model_params": {"multi_shot": False, "watermark_info": {"enabled": False}},
        }

    def test_image_to_video_first_end(self, evolink_provider: EvoLinkProvider) -> None:
        request = req(
            mode="image-to-video",
            prompt="x",
            first_frame=IMG[0],
            end_frame=IMG[1],
            quality="1080p",
            sound=True,
        )
        body = self.build(evolink_provider, request)
        assert body["model"] == "kling-o3-image-to-video"
        assert (body["image_start"], body["image_end"]) == (IMG[0], IMG[1])
        assert (body["quality"], body["sound"]) == ("1080p", "on")
        assert "image_urls" not in body and "aspect_ratio" not in body

    def test_reference_with_images_elements_video(self, evolink_provider: EvoLinkProvider) -> None:
        request = req(
            mode="reference-to-video",
            prompt="<<<image_2>>> and <<<element_1>>> like @Video1",
            reference_images=IMG[:2],
            elements=[{"element_id": "789012"}],
            video={"url": VIDEO, "keep_original_sound": True},
            aspect_ratio="1:1",
        )
        body = self.build(evolink_provider, request)
        assert body["model"] == "kling-o3-reference-to-video"
        assert body["prompt"] == "@Image2 and @Element1 like <<<video_1>>>"
        assert body["image_urls"] == IMG[:2]
        assert (body["video_url"], body["keep_original_sound"]) == (VIDEO, True)
        assert body["model_params"]["element_list"] == [{"element_id": "789012"}]
        assert body["sound"] == "off"

    def test_video_edit(self, evolink_provider: EvoLinkProvider) -> None:
        request = req(mode="video-edit", prompt="snow", video={"url": VIDEO, "keep_original_sound": False})
        body = self.build(evolink_provider, request)
        assert body["model"] == "kling-o3-video-edit"
        assert body["keep_original_sound"] is False
        assert "duration" not in body and "aspect_ratio" not in body

    def test_multi_shot(self, evolink_provider: EvoLinkProvider) -> None:
        request = req(
            mode="text-to-video",
            shots=[{"prompt": "One", "duration": 2}, {"prompt": "Two", "duration": 3}],
            watermark=True,
        )
        body = self.build(evolink_provider, request)
        assert "prompt" not in body
        assert body["duration"] == 5
        assert body["model_params"] == {
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": [
                {"index": 1, "prompt": "One", "duration": "2"},
                {"index": 2, "prompt": "Two", "duration": "3"},
            ],
            "watermark_info": {"enabled": True},
        }

    def test_support(self, evolink_provider: EvoLinkProvider) -> None:
        assert evolink_provider.unsupported_reason(req(model="kling-3.0", mode="text-to-video", prompt="x"))
        assert evolink_provider.unsupported_reason(req(model="kling-o1", mode="text-to-video", prompt="x"))
        assert (
            evolink_provider.unsupported_reason(req(mode="text-to-video", prompt="x", quality="4k")) is None
        )
        four_k_video = req(mode="video-edit", prompt="x", quality="4k", video={"url": VIDEO})
        assert evolink_provider.unsupported_reason(four_k_video)


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("pending", Status.SUBMITTED),
        ("processing", Status.PROCESSING),
        ("completed", Status.SUCCEEDED),
        ("failed", Status.FAILED),
    ],
)
def test_evolink_status_mapping(wire: str, status: Status) -> None:
    assert evolink.parse_task({"id": "task-1", "status": wire, "progress": 40}).status is status


def test_evolink_parse_task_fields() -> None:
    task = evolink.parse_task(
        {
            "id": "task-unified-1",
            "status": "completed",
            "progress": 100,
            "results": ["https://cdn/e1.mp4"],
            "usage": {"credits": 27, "cost_usd": 0.375},
        }
    )
    assert (task.task_id, task.progress, task.outputs[0].url) == ("task-unified-1", 100, "https://cdn/e1.mp4")
    assert task.cost is not None and (task.cost.usd, task.cost.credits) == (Decimal("0.375"), Decimal("27"))
    failed = evolink.parse_task(
        {"id": "t", "status": "failed", "error": {"code": "cancelled", "message": "x"}}
    )
    assert failed.error is not None and (failed.error.code, failed.error.provider_code) == (
        "canceled",
        "cancelled",
    )


@pytest.mark.parametrize(
    ("http", "kind", "ours"),
    [
        (400, "final", "bad_request"),
        (401, "final", "auth"),
        (403, "final", "auth"),
        (402, "retryable", "account_error"),
        (429, "throttled", "rate_limited"),
        (500, "retryable", "provider_error"),
        (503, "retryable", "provider_error"),
    ],
)
def test_evolink_error_table(http: int, kind: str, ours: str) -> None:
    body = {"error": {"code": "x_code", "message": "m", "type": "t"}}
    error = evolink.classify_response(httpx.Response(http, json=body), body)
    assert error is not None and (error.kind, error.code, error.provider_code) == (kind, ours, "x_code")


class TestEvoLinkCalls:
    @respx.mock
    def test_submit_query_cancel(self, evolink_provider: EvoLinkProvider) -> None:
        create = respx.post(f"{EVOLINK_URL}/v1/videos/generations").respond(
            json={
                "id": "task-unified-1",
                "status": "pending",
                "progress": 0,
                "object": "video.generation.task",
            }
        )
        task = evolink_provider.submit(
            req(mode="text-to-video", prompt="x"), callback_url=CALLBACK, external_task_id="g"
        )
        assert (task.task_id, task.status) == ("task-unified-1", Status.SUBMITTED)
        assert create.calls.last.request.headers["Authorization"] == "Bearer evo-key"

        respx.get(f"{EVOLINK_URL}/v1/tasks/task-unified-1").respond(
            json={"id": "task-unified-1", "status": "processing", "progress": 40}
        )
        assert evolink_provider.query("task-unified-1").progress == 40

        cancel = respx.post(f"{EVOLINK_URL}/v1/tasks/task-unified-1/cancel").respond(
            json={"id": "task-unified-1", "status": "failed", "error": {"code": "cancelled", "message": "x"}}
        )
        assert evolink_provider.cancel("task-unified-1") is True
        assert cancel.call_count == 1
        assert evolink_provider.find_by_external_id("g") is None
        assert (
            evolink_provider.parse_callback({"id": "task-unified-1", "status": "completed"})
            == "task-unified-1"
        )

    @respx.mock
    def test_elements(self, evolink_provider: EvoLinkProvider) -> None:
        create = respx.post(f"{EVOLINK_URL}/v1/videos/generations").respond(
            json={"id": "task-el", "status": "pending"}
        )
        element = evolink_provider.create_element(
            ElementSpec(name="Hero", frontal_image=IMG[0], reference_images=[IMG[1]]), external_id="elm_1"
        )
        assert sent_json(create) == {
            "model": "kling-custom-element",
            "element_name": "Hero",
            "element_description": "Hero",
            "frontal_image_url": IMG[0],
            "reference_image_urls": [IMG[1]],
        }
        respx.get(f"{EVOLINK_URL}/v1/tasks/task-el").respond(
            json={"id": "task-el", "status": "completed", "results": ["555"]}
        )
        ready = evolink_provider.get_element(element)
        assert (ready.status, ready.element_id) == ("ready", "555")
        evolink_provider.delete_element(ready)  # not offered: a no-op, no HTTP call


# ==================================================================================================
# kling3api
# ==================================================================================================


class TestKling3ApiMapping:
    def build(self, provider: Kling3ApiProvider, request: GenerationRequest) -> dict[str, Any]:
        path, body = provider.build_submit(request, callback_url=CALLBACK, external_task_id="gen_1")
        assert path == "/api/generate"
        assert "callback_url" not in body and "external_task_id" not in body
        return body

    @pytest.mark.parametrize(
        ("model", "mode", "quality", "extra", "expected"),
        [
            ("kling-3.0", "text-to-video", "1080p", {}, "pro-text-to-video"),
            ("kling-3.0", "text-to-video", "720p", {}, "std-text-to-video"),
            ("kling-3.0", "image-to-video", "1080p", {"first_frame": IMG[0]}, "pro-image-to-video"),
            ("kling-3.0", "image-to-video", "720p", {"first_frame": IMG[0]}, "std-image-to-video"),
            ("kling-o3", "text-to-video", "1080p", {}, "o3-pro-text-to-video"),
            ("kling-o3", "text-to-video", "720p", {}, "o3-std-text-to-video"),
            ("kling-o3", "image-to-video", "720p", {"first_frame": IMG[0]}, "o3-std-image-to-video"),
            (
                "kling-o3",
                "reference-to-video",
                "1080p",
                {"reference_images": IMG[:2], "aspect_ratio": "16:9"},
                "o3-pro-reference-to-video",
            ),
            ("kling-o3", "video-edit", "1080p", {"video": {"url": VIDEO}}, "o3-pro-video-edit"),
            ("kling-o3", "video-edit", "720p", {"video": {"url": VIDEO}}, "o3-std-video-edit"),
        ],
    )
    def test_types(
        self,
        k3_provider: Kling3ApiProvider,
        model: str,
        mode: str,
        quality: str,
        extra: dict[str, Any],
        expected: str,
    ) -> None:
        body = self.build(k3_provider, req(model=model, mode=mode, quality=quality, prompt="x", **extra))
        assert body["type"] == expected

    def test_text_to_video_sends_sound_explicitly(self, k3_provider: Kling3ApiProvider) -> None:
        body = self.build(k3_provider, req(model="kling-3.0", mode="text-to-video", prompt="eagle"))
        assert body == {
            "type": "std-text-to-video",
            "sound": False,
            "prompt": "eagle",
            "duration": 5,
            "aspect_ratio": "16:9",
        }

    def test_image_to_video_first_end(self, k3_provider: Kling3ApiProvider) -> None:
        body = self.build(
            k3_provider,
            req(
                model="kling-3.0",
                mode="image-to-video",
                prompt="x",
                first_frame=IMG[0],
                end_frame=IMG[1],
                cfg_scale=0.4,
            ),
        )
        assert (body["image"], body["end_image"], body["cfg_scale"]) == (IMG[0], IMG[1], 0.4)

    def test_reference_and_edit(self, k3_provider: Kling3ApiProvider) -> None:
        body = self.build(
            k3_provider,
            req(mode="reference-to-video", prompt="@Image1", reference_images=IMG[:2], aspect_ratio="16:9"),
        )
        assert body["images"] == IMG[:2]
        assert body["prompt"] == "<<<image_1>>>"
        body = self.build(k3_provider, req(mode="video-edit", prompt="snow", video={"url": VIDEO}))
        assert (body["video"], body["keep_original_sound"], body["sound"]) == (VIDEO, True, False)
        assert "duration" not in body

    def test_unsupported(self, k3_provider: Kling3ApiProvider) -> None:
        assert k3_provider.unsupported_reason(req(mode="text-to-video", prompt="x" * 2001))
        assert k3_provider.unsupported_reason(req(mode="text-to-video", prompt="x" * 2000)) is None
        shots = [{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 3}]
        assert k3_provider.unsupported_reason(req(mode="text-to-video", shots=shots))
        assert k3_provider.unsupported_reason(
            req(mode="reference-to-video", prompt="x", elements=[{"element_id": "1"}], aspect_ratio="16:9")
        )
        assert k3_provider.unsupported_reason(req(mode="text-to-video", prompt="x", quality="4k"))
        assert k3_provider.unsupported_reason(req(model="kling-o1", mode="text-to-video", prompt="x"))
        assert k3_provider.supports_callbacks is False


@pytest.mark.parametrize(
    ("wire", "status", "progress"),
    [
        ("PENDING", Status.SUBMITTED, 0),
        ("IN_PROGRESS", Status.PROCESSING, 50),
        ("SUCCESS", Status.SUCCEEDED, 100),
        ("FAILED", Status.FAILED, None),
    ],
)
def test_kling3api_status_mapping(wire: str, status: Status, progress: int | None) -> None:
    task = kling3api.parse_task({"task_id": "n71x", "status": wire})
    assert (task.status, task.progress) == (status, progress)


@pytest.mark.parametrize(
    ("http", "code", "kind", "ours"),
    [
        (400, "INVALID_PROMPT", "final", "bad_request"),
        (400, "INVALID_DURATION", "final", "bad_request"),
        (400, "INVALID_TYPE", "final", "bad_request"),
        (400, "MISSING_IMAGE", "final", "bad_request"),
        (400, "MISSING_VIDEO", "final", "bad_request"),
        (401, "INVALID_API_KEY", "final", "auth"),
        (402, "INSUFFICIENT_CREDITS", "retryable", "account_error"),
        (429, "RATE_LIMITED", "throttled", "rate_limited"),
        (500, "INTERNAL_ERROR", "retryable", "provider_error"),
        (503, "SOMETHING_NEW", "retryable", "provider_error"),
    ],
)
def test_kling3api_error_table(http: int, code: str, kind: str, ours: str) -> None:
    body = {"code": code, "message": "m"}
    error = kling3api.classify_response(httpx.Response(http, json=body), body)
    assert error is not None and (error.kind, error.code, error.provider_code) == (kind, ours, code)


class TestKling3ApiCalls:
    @respx.mock
    def test_submit_and_status(self, k3_provider: Kling3ApiProvider) -> None:
        respx.post(f"{K3_URL}/api/generate").respond(
            json={
                "code": 200,
                "message": "success",
                "data": {"task_id": "n71abc", "status": "IN_PROGRESS", "consumed_credits": 400},
            }
        )
        task = k3_provider.submit(
            req(mode="text-to-video", prompt="x"), callback_url=CALLBACK, external_task_id="g"
        )
        assert (task.task_id, task.status) == ("n71abc", Status.PROCESSING)
        assert task.cost is not None and task.cost.credits == Decimal("400")

        status = respx.get(f"{K3_URL}/api/status", params={"task_id": "n71abc"}).respond(
            json={
                "code": 200,
                "message": "success",
                "data": {
                    "task_id": "n71abc",
                    "status": "SUCCESS",
                    "consumed_credits": 400,
                    "response": ["https://cdn.example.com/videos/abc123.mp4"],
                    "error_message": None,
                },
            }
        )
        done = k3_provider.query("n71abc")
        assert status.call_count == 1
        assert (done.status, done.outputs[0].url) == (
            Status.SUCCEEDED,
            "https://cdn.example.com/videos/abc123.mp4",
        )

    def test_no_elements(self, k3_provider: Kling3ApiProvider) -> None:
        with pytest.raises(ProviderError):
            k3_provider.create_element(ElementSpec(name="x", frontal_image=IMG[0]), external_id="e")
        with pytest.raises(ProviderError):
            k3_provider.get_element(
                ProviderElement(provider=ProviderName.KLING3API, element_id="1", status="ready")
            )
