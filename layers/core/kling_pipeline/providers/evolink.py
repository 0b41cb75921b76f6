"""The EvoLink unified gateway (seeds 000, 001, 002; docs/providers.md "evolink"): kling-o3 only.

EvoLink takes no external id, so a create whose answer was lost cannot be looked up: it is re-sent only
when the request provably never left (connect errors). Everything else surfaces and the router decides.
"""

from __future__ import annotations

from typing import Any

import httpx

from kling_pipeline.domain.placeholders import PlaceholderKind, Syntax, find_placeholders
from kling_pipeline.domain.request import GenerationRequest, Mode, Model, Quality
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import ProviderError
from kling_pipeline.providers.base import (
    ElementSpec,
    LostCreate,
    ProviderElement,
    ProviderName,
    ProviderTask,
    TaskCost,
    TaskError,
    TaskOutput,
)
from kling_pipeline.providers.http import (
    DEFAULT_RETRY,
    JsonApi,
    RetryPolicy,
    bearer,
    json_object,
    kind_for_http_status,
    wire_decimal,
)
from kling_pipeline.providers.wire import ELEMENT_STATUS, element_list, multi_shot_fields

GENERATIONS_PATH = "/v1/videos/generations"
ELEMENT_MODEL = "kling-custom-element"
# Seed 002 offers 4k for reference-to-video from images/elements; seeds 000/001 list 720p/1080p only for
# video references and image-to-video; text-to-video is silent (assumed like reference-to-video).
FOUR_K_MODES = frozenset({Mode.TEXT_TO_VIDEO, Mode.REFERENCE_TO_VIDEO})

STATUS = {
    "pending": Status.SUBMITTED,
    "processing": Status.PROCESSING,
    "completed": Status.SUCCEEDED,
    "failed": Status.FAILED,
}


def classify_response(response: httpx.Response, body: dict[str, Any]) -> ProviderError | None:
    """HTTP status decides the kind (400 final, 401/403 final, 402 account, 429 throttled, 5xx retryable)."""
    if response.is_success:
        return None
    kind, code = kind_for_http_status(response.status_code)
    error = json_object(body.get("error"))
    message = str(error.get("message") or response.reason_phrase or "error")
    provider_code = error.get("code")
    return ProviderError(
        ProviderName.EVOLINK,
        kind,
        code,
        message,
        provider_code=str(provider_code) if provider_code is not None else None,
        http_status=response.status_code,
    )


# --------------------------------------------------------------------------------------------------
# Request mapping (pure)
# --------------------------------------------------------------------------------------------------


def unsupported_reason(request: GenerationRequest) -> str | None:
    """Why EvoLink cannot run this request, or None (kling-o3's own limits are request rules already)."""
    if request.model is not Model.KLING_O3:
        return "EvoLink offers kling-o3 only"
    if request.quality is Quality.K4 and (request.has_video_input or request.mode not in FOUR_K_MODES):
        return "EvoLink offers 4k for text-to-video and image/element reference-to-video only"
    return None


def render_prompt(text: str) -> str:
    """`@ImageN` / `@ElementN` (seed 002) but `<<<video_1>>>` for the video (docs/providers.md: the
    gateway documents no `@` form for videos, and relays Kling's own syntax)."""
    parts: list[str] = []
    last = 0
    for placeholder in find_placeholders(text):
        syntax: Syntax = "kling" if placeholder.kind is PlaceholderKind.VIDEO else "at"
        parts += [text[last : placeholder.start], placeholder.render(syntax)]
        last = placeholder.end
    return "".join([*parts, text[last:]])


def model_params(request: GenerationRequest) -> dict[str, Any]:
    """The Kling omni fields EvoLink nests under `model_params` (seeds 000, 001)."""
    params: dict[str, Any] = {
        "watermark_info": {"enabled": request.watermark},
        **multi_shot_fields(request, render_prompt),
    }
    if request.elements:
        params["element_list"] = element_list(request)
    return params


def generation_body(request: GenerationRequest, *, callback_url: str | None) -> dict[str, Any]:
    """`POST /v1/videos/generations` body; placeholders as `@ImageN` / `@ElementN` (seed 002)."""
    body: dict[str, Any] = {
        "model": f"kling-o3-{request.mode.value}",
        "quality": request.quality.value,
        "sound": "on" if request.sound else "off",
        "model_params": model_params(request),
    }
    if request.prompt:  # never together with shots (DESIGN.md §5 rule 1)
        body["prompt"] = render_prompt(request.prompt)
    if request.duration is not None:  # None for video edit: the output is as long as the input video
        body["duration"] = request.duration
    if request.aspect_ratio is not None:
        body["aspect_ratio"] = request.aspect_ratio.value
    if request.first_frame:
        body["image_start"] = request.first_frame
    if request.end_frame:
        body["image_end"] = request.end_frame
    if request.reference_images:
        body["image_urls"] = list(request.reference_images)
    if request.video is not None:
        body["video_url"] = request.video.url
        body["keep_original_sound"] = request.video.keep_original_sound
    if callback_url:
        body["callback_url"] = callback_url
    return body


# --------------------------------------------------------------------------------------------------
# Response mapping (pure)
# --------------------------------------------------------------------------------------------------


def _cost(usage: Any) -> TaskCost | None:
    if not isinstance(usage, dict):
        return None
    credits, usd = wire_decimal(usage.get("credits")), wire_decimal(usage.get("cost_usd"))
    return TaskCost(usd=usd, credits=credits) if credits is not None or usd is not None else None


def _error(task: dict[str, Any]) -> TaskError:
    error = json_object(task.get("error"))
    provider_code = str(error["code"]) if error.get("code") is not None else None
    code = "canceled" if provider_code in ("cancelled", "canceled") else "provider_error"
    return TaskError(
        code=code, message=str(error.get("message") or "generation failed"), provider_code=provider_code
    )


def parse_task(task: dict[str, Any]) -> ProviderTask:
    """An EvoLink task object (create answer, `GET /v1/tasks/{id}`, or a callback body) in our terms."""
    status = STATUS.get(str(task.get("status", "")), Status.PROCESSING)
    progress = task.get("progress")
    results = task.get("results") or []
    return ProviderTask(
        provider=ProviderName.EVOLINK,
        task_id=str(task.get("id", "")),
        status=status,
        progress=max(0, min(100, int(progress))) if isinstance(progress, int | float) else None,
        outputs=[TaskOutput(url=str(url)) for url in results if isinstance(url, str) and url],
        error=_error(task) if status is Status.FAILED else None,
        cost=_cost(task.get("usage")),
    )


def parse_element(task: dict[str, Any]) -> ProviderElement:
    status = ELEMENT_STATUS[STATUS.get(str(task.get("status", "")), Status.PROCESSING)]
    results = task.get("results") or []
    element_id = str(results[0]) if status == "ready" and results else None
    return ProviderElement(
        provider=ProviderName.EVOLINK,
        element_id=element_id,
        task_id=str(task.get("id", "")) or None,
        status=status,
        error=_error(task) if status == "failed" else None,
    )


# --------------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------------


class EvoLinkProvider:
    """One EvoLink API key."""

    name = ProviderName.EVOLINK
    supports_callbacks = True
    supports_cancel = True
    lost_create: LostCreate = "callback"

    def __init__(
        self, *, api_key: str, base_url: str, client: httpx.Client, retry: RetryPolicy = DEFAULT_RETRY
    ) -> None:
        self.api = JsonApi(ProviderName.EVOLINK, base_url, client, bearer(api_key), classify_response, retry)

    def unsupported_reason(self, request: GenerationRequest) -> str | None:
        return unsupported_reason(request)

    def build_submit(
        self, request: GenerationRequest, *, callback_url: str | None, external_task_id: str
    ) -> tuple[str, dict[str, Any]]:
        return GENERATIONS_PATH, generation_body(request, callback_url=callback_url)

    def submit(
        self, request: GenerationRequest, *, callback_url: str | None, external_task_id: str
    ) -> ProviderTask:
        path, body = self.build_submit(request, callback_url=callback_url, external_task_id=external_task_id)
        return parse_task(self.api.call("POST", path, json=body, idempotent=False))

    def query(self, task_id: str) -> ProviderTask:
        return parse_task(self.api.call("GET", f"/v1/tasks/{task_id}", idempotent=True))

    def find_by_external_id(
        self, external_task_id: str, request: GenerationRequest | None = None
    ) -> ProviderTask | None:
        return None  # EvoLink keeps no id of ours

    def cancel(self, task_id: str) -> bool:
        self.api.call("POST", f"/v1/tasks/{task_id}/cancel", idempotent=True)
        return True

    def parse_callback(self, body: dict[str, Any]) -> str | None:
        task_id = body.get("id")
        return str(task_id) if task_id else None

    def create_element(self, spec: ElementSpec, *, external_id: str) -> ProviderElement:
        body: dict[str, Any] = {
            "model": ELEMENT_MODEL,
            "element_name": spec.name,
            "element_description": spec.description or spec.name,
            "frontal_image_url": spec.frontal_image,
            "reference_image_urls": list(spec.reference_images),
        }
        return parse_element(self.api.call("POST", GENERATIONS_PATH, json=body, idempotent=False))

    def get_element(self, element: ProviderElement) -> ProviderElement:
        if not element.task_id:
            return element
        return parse_element(self.api.call("GET", f"/v1/tasks/{element.task_id}", idempotent=True))

    def delete_element(self, element: ProviderElement) -> None:
        return None  # EvoLink offers no delete: our record goes, the provider's element stays
