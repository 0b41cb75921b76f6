"""kling3api.com (seed 004, docs/providers.md "kling3api"): one `type` per model/quality/mode, poll only.

No callbacks, no external id, no elements, no multi-shot, no 4k, prompts up to 2000 characters. Sound is
always sent because the provider's default is on (and sound costs more).
"""

from __future__ import annotations

from typing import Any

import httpx

from kling_pipeline.domain.placeholders import render
from kling_pipeline.domain.request import GenerationRequest, Mode, Model
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import ProviderError, ProviderErrorKind
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
from kling_pipeline.providers.wire import COARSE_PROGRESS, KLING_TIER

GENERATE_PATH = "/api/generate"
STATUS_PATH = "/api/status"
MAX_PROMPT = 2000

STATUS = {
    "PENDING": Status.SUBMITTED,
    "IN_PROGRESS": Status.PROCESSING,
    "SUCCESS": Status.SUCCEEDED,
    "FAILED": Status.FAILED,
}

# Seed 004's error table: the code string is more specific than the HTTP status when present.
ERROR_CODES: dict[str, tuple[ProviderErrorKind, str]] = {
    "INVALID_API_KEY": ("final", "auth"),
    "INSUFFICIENT_CREDITS": ("retryable", "account_error"),
    "RATE_LIMITED": ("throttled", "rate_limited"),
    "INTERNAL_ERROR": ("retryable", "provider_error"),
    "INVALID_PROMPT": ("final", "bad_request"),
    "INVALID_DURATION": ("final", "bad_request"),
    "INVALID_TYPE": ("final", "bad_request"),
    "MISSING_IMAGE": ("final", "bad_request"),
    "MISSING_VIDEO": ("final", "bad_request"),
}


def classify_response(response: httpx.Response, body: dict[str, Any]) -> ProviderError | None:
    """Success is HTTP 2xx with `code` 200 (or absent); errors carry a code string like `RATE_LIMITED`."""
    code = body.get("code")
    if response.is_success and code in (200, "200", None):
        return None
    provider_code = code if isinstance(code, str) and not code.isdigit() else None
    if provider_code in ERROR_CODES:
        kind, ours = ERROR_CODES[provider_code]
    else:
        status = response.status_code
        if response.is_success:  # an error envelope on a 2xx: its numeric code, else treat as a 5xx
            status = int(str(code)) if str(code).isdigit() else 500
        kind, ours = kind_for_http_status(status)
    message = str(body.get("message") or body.get("error") or response.reason_phrase or "error")
    return ProviderError(
        ProviderName.KLING3API,
        kind,
        ours,
        message,
        provider_code=provider_code,
        http_status=response.status_code,
    )


# --------------------------------------------------------------------------------------------------
# Request mapping (pure)
# --------------------------------------------------------------------------------------------------


def task_type(request: GenerationRequest) -> str:
    """`{pro|std}-{text|image}-to-video` for kling-3.0, `o3-{pro|std}-<mode>` for kling-o3 (seed 004)."""
    tier = KLING_TIER[request.quality]
    if request.model is Model.KLING_3_0:
        return f"{tier}-{request.mode.value}"
    return f"o3-{tier}-{request.mode.value}"


def unsupported_reason(request: GenerationRequest) -> str | None:
    """Why kling3api cannot run this request, or None. What the request rules already guarantee (the
    models' modes and prompt tuning, at most 7 reference images, an end frame only with a first frame, a
    video only in reference-to-video and video-edit) is not checked again."""
    if request.model is Model.KLING_O1:
        return "kling3api offers kling-3.0 and kling-o3 only"
    if request.quality not in KLING_TIER:
        return "kling3api offers 720p (std) and 1080p (pro) only"
    if request.prompt is not None and len(request.prompt) > MAX_PROMPT:
        return f"prompt longer than kling3api's {MAX_PROMPT} characters"
    if request.shots:
        return "kling3api has no multi-shot"
    if request.elements:
        return "kling3api has no elements"
    if request.reference_images and request.mode is not Mode.REFERENCE_TO_VIDEO:
        return "kling3api takes reference images for O3 reference-to-video only"
    if (request.first_frame or request.end_frame) and request.mode is not Mode.IMAGE_TO_VIDEO:
        return "kling3api takes first/end frames for image-to-video only"
    if request.first_frame and request.aspect_ratio is None:
        # Seed 004: aspect_ratio defaults to 16:9 there, so the output would not follow the image.
        return "kling3api cannot follow the first frame's aspect ratio; set aspect_ratio"
    return None


def generate_body(request: GenerationRequest) -> dict[str, Any]:
    """`POST /api/generate` body. Placeholders in Kling's `<<<image_N>>>` syntax (assumed: the seed shows
    none, and kling3api relays to Kling)."""
    body: dict[str, Any] = {"type": task_type(request), "sound": request.sound}
    if request.prompt:
        body["prompt"] = render(request.prompt, "kling")
    if request.duration is not None:  # None for video edit: the output is as long as the input video
        body["duration"] = request.duration
    if request.aspect_ratio is not None:
        body["aspect_ratio"] = request.aspect_ratio.value
    if request.first_frame:
        body["image"] = request.first_frame
    if request.end_frame:
        body["end_image"] = request.end_frame
    if request.reference_images:
        body["images"] = list(request.reference_images)
    if request.video is not None:
        body["video"] = request.video.url
        body["keep_original_sound"] = request.video.keep_original_sound
    if request.negative_prompt:  # kling-3.0 only, a request rule
        body["negative_prompt"] = request.negative_prompt
    if request.cfg_scale is not None:
        body["cfg_scale"] = request.cfg_scale
    return body


# --------------------------------------------------------------------------------------------------
# Response mapping (pure)
# --------------------------------------------------------------------------------------------------


def parse_task(data: dict[str, Any]) -> ProviderTask:
    """`data` of a create or status answer in our terms."""
    status = STATUS.get(str(data.get("status", "")).upper(), Status.PROCESSING)
    response = data.get("response") or []
    credits = wire_decimal(data.get("consumed_credits"))
    error = None
    if status is Status.FAILED:
        error = TaskError(
            code="provider_error", message=str(data.get("error_message") or "generation failed")
        )
    return ProviderTask(
        provider=ProviderName.KLING3API,
        task_id=str(data.get("task_id", "")),
        status=status,
        progress=COARSE_PROGRESS.get(status),
        outputs=[TaskOutput(url=url) for url in response if isinstance(url, str) and url],
        error=error,
        cost=TaskCost(credits=credits) if credits is not None else None,
    )


# --------------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------------


class Kling3ApiProvider:
    """One kling3api.com API key."""

    name = ProviderName.KLING3API
    supports_callbacks = False
    supports_cancel = False
    lost_create: LostCreate = "none"

    def __init__(
        self, *, api_key: str, base_url: str, client: httpx.Client, retry: RetryPolicy = DEFAULT_RETRY
    ) -> None:
        self.api = JsonApi(
            ProviderName.KLING3API, base_url, client, bearer(api_key), classify_response, retry
        )

    def unsupported_reason(self, request: GenerationRequest) -> str | None:
        return unsupported_reason(request)

    def build_submit(
        self, request: GenerationRequest, *, callback_url: str | None, external_task_id: str
    ) -> tuple[str, dict[str, Any]]:
        return GENERATE_PATH, generate_body(request)  # no callback, no external id on this provider

    def submit(
        self, request: GenerationRequest, *, callback_url: str | None, external_task_id: str
    ) -> ProviderTask:
        path, body = self.build_submit(request, callback_url=callback_url, external_task_id=external_task_id)
        return parse_task(json_object(self.api.call("POST", path, json=body, idempotent=False).get("data")))

    def query(self, task_id: str) -> ProviderTask:
        body = self.api.call("GET", STATUS_PATH, params={"task_id": task_id}, idempotent=True)
        return parse_task(json_object(body.get("data")))

    def find_by_external_id(
        self, external_task_id: str, request: GenerationRequest | None = None
    ) -> ProviderTask | None:
        return None  # kling3api keeps no id of ours

    def cancel(self, task_id: str) -> bool:
        return False

    def parse_callback(self, body: dict[str, Any]) -> str | None:
        data = json_object(body.get("data")) or body  # no callbacks documented; tolerate the status shape
        task_id = data.get("task_id")
        return str(task_id) if task_id else None

    def create_element(self, spec: ElementSpec, *, external_id: str) -> ProviderElement:
        raise ProviderError(self.name, "final", "unsupported", "kling3api has no custom elements")

    def get_element(self, element: ProviderElement) -> ProviderElement:
        raise ProviderError(self.name, "final", "unsupported", "kling3api has no custom elements")

    def delete_element(self, element: ProviderElement) -> None:
        raise ProviderError(self.name, "final", "unsupported", "kling3api has no custom elements")
