"""The official Kling API (seed 003, docs/providers.md "kling"): JWT auth, omni-video and kling-v3 endpoints.

Kling accepts our generation id as `external_task_id` and can be queried by it, so a create whose answer
was lost is looked up before it is ever sent again: a 500-after-create never makes two paid tasks.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx
import jwt

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
    is_retryable,
    is_unsent,
    json_object,
    kind_for_http_status,
    transport_error,
    wire_decimal,
)
from kling_pipeline.providers.wire import (
    COARSE_PROGRESS,
    ELEMENT_STATUS,
    KLING_TIER,
    element_list,
    multi_shot_fields,
)

OMNI = "omni-video"
TEXT2VIDEO = "text2video"
IMAGE2VIDEO = "image2video"
ENDPOINTS = (OMNI, TEXT2VIDEO, IMAGE2VIDEO)

MODEL_NAMES = {Model.KLING_O3: "kling-v3-omni", Model.KLING_O1: "kling-video-o1", Model.KLING_3_0: "kling-v3"}

STATUS = {
    "submitted": Status.SUBMITTED,
    "processing": Status.PROCESSING,
    "succeed": Status.SUCCEEDED,
    "failed": Status.FAILED,
}

ELEMENTS_PATH = "/v1/general/advanced-custom-elements"
DELETE_ELEMENTS_PATH = "/v1/general/delete-elements"

JWT_TTL_S = 1800
JWT_NBF_SKEW_S = 5
JWT_REFRESH_MARGIN_S = 300


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def classify_code(code: int) -> tuple[ProviderErrorKind, str] | None:
    """Kling's documented error codes → (kind, our code); None for a code outside the table."""
    if 1000 <= code <= 1004:
        return "final", "auth"
    if 1100 <= code <= 1103:
        return "retryable", "account_error"  # arrears, depleted pack, no permission: another account may work
    if 1200 <= code <= 1203:
        return "final", "bad_request"
    if code in (1300, 1301):
        return "final", "content_policy"
    if code == 1302:
        return "throttled", "rate_limited"
    if code == 1303:
        return "throttled", "concurrency_limited"
    if 5000 <= code <= 5002:
        return "retryable", "provider_error"
    return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def classify_response(response: httpx.Response, body: dict[str, Any]) -> ProviderError | None:
    """None for a success envelope (`code` 0); else the error the code (or, failing that, HTTP) names."""
    code = _int_or_none(body.get("code"))
    if response.is_success and code in (0, None):
        return None
    classified = classify_code(code) if code is not None else None
    kind, ours = classified or kind_for_http_status(response.status_code if not response.is_success else 500)
    message = str(body.get("message") or response.reason_phrase or "error")
    return ProviderError(
        ProviderName.KLING,
        kind,
        ours,
        message,
        provider_code=str(code) if code is not None else None,
        http_status=response.status_code,
    )


def _is_not_found(exc: ProviderError) -> bool:
    return exc.http_status == 404 or exc.provider_code == "1203"


# --------------------------------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------------------------------


class JwtSigner:
    """Kling's short-lived HS256 token, signed once and reused until ~5 minutes before it expires."""

    def __init__(self, access_key: str, secret_key: str, *, clock: Callable[[], float] = time.time) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._token: str | None = None
        self._exp = 0

    def token(self) -> str:
        now = int(self._clock())
        if self._token is None or now >= self._exp - JWT_REFRESH_MARGIN_S:
            self._exp = now + JWT_TTL_S
            claims = {"iss": self._access_key, "exp": self._exp, "nbf": now - JWT_NBF_SKEW_S}
            self._token = jwt.encode(
                claims, self._secret_key, algorithm="HS256", headers={"alg": "HS256", "typ": "JWT"}
            )
        return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}


# --------------------------------------------------------------------------------------------------
# Request mapping (pure)
# --------------------------------------------------------------------------------------------------


def endpoint_for(request: GenerationRequest) -> str:
    """omni-video for the Omni models; text2video / image2video for kling-3.0 (kling-v3)."""
    if request.model is not Model.KLING_3_0:
        return OMNI
    return IMAGE2VIDEO if request.mode is Mode.IMAGE_TO_VIDEO else TEXT2VIDEO


def unsupported_reason(request: GenerationRequest) -> str | None:
    """Why the official API cannot run this request, or None. The models' own limits (kling-3.0's modes,
    kling-o1 without sound or shots) are request rules already (`MODEL_CAPABILITIES`)."""
    if request.quality not in KLING_TIER:
        return "the official Kling API offers 720p (std) and 1080p (pro) only"
    if request.prompt is None and not request.is_multi_shot and endpoint_for(request) == OMNI:
        # Seed 003: the omni prompt "must not be empty" unless multi_shot is on.
        return "the official omni endpoint needs a prompt"
    return None


def _kling_placeholders(text: str) -> str:
    return render(text, "kling")


def _common(request: GenerationRequest, *, callback_url: str | None, external_task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_name": MODEL_NAMES[request.model],
        **multi_shot_fields(request, _kling_placeholders),
        "mode": KLING_TIER[request.quality],
        "watermark_info": {"enabled": request.watermark},
        "external_task_id": external_task_id,
    }
    if request.model is not Model.KLING_O1:  # seed 003: `sound` exists from V2.6 on only
        body["sound"] = "on" if request.sound else "off"
    if request.prompt:  # never together with shots (DESIGN.md §5 rule 1)
        body["prompt"] = _kling_placeholders(request.prompt)
    if request.duration is not None:  # None for video edit: the output is as long as the input video
        body["duration"] = str(request.duration)
    if callback_url:
        body["callback_url"] = callback_url
    return body


def omni_body(
    request: GenerationRequest, *, callback_url: str | None, external_task_id: str
) -> dict[str, Any]:
    """The omni-video body (seed 003). Reference images come first in `image_list` so `<<<image_N>>>`
    names the same picture as `@ImageN` does on the gateways (the Nth reference image)."""
    body = _common(request, callback_url=callback_url, external_task_id=external_task_id)
    images: list[dict[str, str]] = [{"image_url": url} for url in request.reference_images]
    if request.first_frame:
        images.append({"image_url": request.first_frame, "type": "first_frame"})
    if request.end_frame:
        images.append({"image_url": request.end_frame, "type": "end_frame"})
    if images:
        body["image_list"] = images
    if request.elements:
        body["element_list"] = element_list(request)
    if request.video is not None:
        body["video_list"] = [
            {
                "video_url": request.video.url,
                "refer_type": request.video_refer_type or "feature",
                "keep_original_sound": "yes" if request.video.keep_original_sound else "no",
            }
        ]
    if request.aspect_ratio is not None:  # None: follows the first frame, or the video being edited
        body["aspect_ratio"] = request.aspect_ratio.value
    return body


def v3_body(request: GenerationRequest, *, callback_url: str | None, external_task_id: str) -> dict[str, Any]:
    """text2video / image2video body for kling-v3 (assumed: the omni names plus `image` / `image_tail`)."""
    body = _common(request, callback_url=callback_url, external_task_id=external_task_id)
    if request.negative_prompt:
        body["negative_prompt"] = request.negative_prompt
    if request.cfg_scale is not None:
        body["cfg_scale"] = request.cfg_scale
    if endpoint_for(request) == IMAGE2VIDEO:
        if request.first_frame:
            body["image"] = request.first_frame
        if request.end_frame:
            body["image_tail"] = request.end_frame
        if request.elements:
            body["element_list"] = element_list(request)
    elif request.aspect_ratio is not None:
        body["aspect_ratio"] = request.aspect_ratio.value
    return body


# --------------------------------------------------------------------------------------------------
# Response mapping (pure)
# --------------------------------------------------------------------------------------------------


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_task(task: dict[str, Any]) -> ProviderTask:
    """A Kling task object (query `data`, or a callback body) in our terms."""
    status = STATUS.get(str(task.get("task_status", "")), Status.PROCESSING)
    videos = json_object(task.get("task_result")).get("videos") or []
    outputs = [
        TaskOutput(url=str(video["url"]), duration_s=_float(video.get("duration")))
        for video in videos
        if isinstance(video, dict) and video.get("url")
    ]
    error = None
    if status is Status.FAILED:
        error = TaskError(
            code="provider_error", message=str(task.get("task_status_msg") or "generation failed")
        )
    credits = wire_decimal(task.get("final_unit_deduction"))
    return ProviderTask(
        provider=ProviderName.KLING,
        task_id=str(task.get("task_id", "")),
        status=status,
        progress=COARSE_PROGRESS.get(status),
        outputs=outputs,
        error=error,
        cost=TaskCost(credits=credits) if credits is not None else None,
        external_task_id=json_object(task.get("task_info")).get("external_task_id"),
    )


def _data(body: dict[str, Any]) -> dict[str, Any]:
    return json_object(body.get("data"))


def parse_element(data: dict[str, Any]) -> ProviderElement:
    status = ELEMENT_STATUS[STATUS.get(str(data.get("task_status", "")), Status.PROCESSING)]
    elements = json_object(data.get("task_result")).get("elements") or []
    element_id = None
    if status == "ready" and elements and isinstance(elements[0], dict):
        raw_id = elements[0].get("element_id")
        element_id = str(raw_id) if raw_id is not None else None
    error = None
    if status == "failed":
        error = TaskError(code="provider_error", message=str(data.get("task_status_msg") or "element failed"))
    return ProviderElement(
        provider=ProviderName.KLING,
        element_id=element_id,
        task_id=str(data.get("task_id", "")) or None,
        status=status,
        error=error,
    )


# --------------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------------


class _EndpointMemo:
    """task id → endpoint for tasks this process created or found: Kling's query path names the endpoint,
    and probing all three costs up to two wasted requests per poll. Bounded (least recently used goes)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    def remember(self, task_id: str, endpoint: str) -> None:
        self._items[task_id] = endpoint
        self._items.move_to_end(task_id)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def order(self, task_id: str) -> list[str]:
        first = self._items.get(task_id)
        return [first, *(e for e in ENDPOINTS if e != first)] if first else list(ENDPOINTS)


class KlingProvider:
    """The official Kling API for one access/secret key pair."""

    name = ProviderName.KLING
    supports_callbacks = True
    supports_cancel = False
    lost_create: LostCreate = "lookup"

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        base_url: str,
        client: httpx.Client,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = JwtSigner(access_key, secret_key, clock=clock)
        self.api = JsonApi(
            ProviderName.KLING, base_url, client, self.signer.headers, classify_response, retry
        )
        self._memo = _EndpointMemo()

    # -- capabilities ------------------------------------------------------------------------------

    def unsupported_reason(self, request: GenerationRequest) -> str | None:
        return unsupported_reason(request)

    def build_submit(
        self, request: GenerationRequest, *, callback_url: str | None, external_task_id: str
    ) -> tuple[str, dict[str, Any]]:
        endpoint = endpoint_for(request)
        build = omni_body if endpoint == OMNI else v3_body
        return f"/v1/videos/{endpoint}", build(
            request, callback_url=callback_url, external_task_id=external_task_id
        )

    # -- tasks -------------------------------------------------------------------------------------

    def submit(
        self, request: GenerationRequest, *, callback_url: str | None, external_task_id: str
    ) -> ProviderTask:
        """Create the task; after a failure whose request may have arrived, look it up before re-sending.

        Every attempt after an ambiguous failure (5xx, read timeout) first asks Kling for our
        `external_task_id`; only a "not found" lets the create go out again. When the attempts run out
        after an ambiguous failure, one last look-up runs before the error is raised.
        """
        path, body = self.build_submit(request, callback_url=callback_url, external_task_id=external_task_id)
        endpoint = endpoint_for(request)
        maybe_created = False

        def attempt() -> ProviderTask:
            nonlocal maybe_created
            if maybe_created:
                found = self._get(external_task_id, [endpoint], once=True)
                if found is not None:
                    return found
            try:
                task = parse_task(_data(self.api.call_once("POST", path, json=body)))
            except (ProviderError, httpx.HTTPError) as exc:
                maybe_created = maybe_created or _ambiguous(exc)
                raise
            self._memo.remember(task.task_id, endpoint)
            return task

        try:
            return self.api.retry.retrying(is_retryable)(attempt)
        except (ProviderError, httpx.HTTPError) as exc:
            if maybe_created:
                found = self._last_look(external_task_id, endpoint)
                if found is not None:
                    return found
            # An earlier attempt may have landed even when the last one was refused: say so.
            if isinstance(exc, httpx.HTTPError):
                error = transport_error(self.name, exc)
                error.maybe_created = maybe_created
                raise error from exc
            exc.maybe_created = exc.maybe_created or maybe_created
            raise

    def query(self, task_id: str) -> ProviderTask:
        """The task by id (task_id or external_task_id); probes the three endpoints unless one is known."""
        task = self._get(task_id, self._memo.order(task_id))
        if task is None:
            raise ProviderError(self.name, "final", "not_found", f"no Kling task {task_id}", http_status=404)
        return task

    def find_by_external_id(
        self, external_task_id: str, request: GenerationRequest | None = None
    ) -> ProviderTask | None:
        endpoints = [endpoint_for(request)] if request is not None else list(ENDPOINTS)
        return self._get(external_task_id, endpoints)

    def cancel(self, task_id: str) -> bool:
        return False  # Kling has no cancel endpoint: we only stop tracking.

    def parse_callback(self, body: dict[str, Any]) -> str | None:
        task = _data(body) if "data" in body else body
        task_id = task.get("task_id")
        return str(task_id) if task_id else None

    # -- elements ----------------------------------------------------------------------------------

    def create_element(self, spec: ElementSpec, *, external_id: str) -> ProviderElement:
        body: dict[str, Any] = {
            "element_name": spec.name,
            "element_description": spec.description or spec.name,
            "reference_type": "image_refer",
            "element_image_list": {
                "frontal_image": spec.frontal_image,
                "refer_images": [{"image_url": url} for url in spec.reference_images],
            },
            "external_task_id": external_id,
        }
        return parse_element(_data(self.api.call("POST", ELEMENTS_PATH, json=body, idempotent=False)))

    def get_element(self, element: ProviderElement) -> ProviderElement:
        if not element.task_id:
            return element
        return parse_element(
            _data(self.api.call("GET", f"{ELEMENTS_PATH}/{element.task_id}", idempotent=True))
        )

    def delete_element(self, element: ProviderElement) -> None:
        if element.element_id is None:
            return  # never created at Kling: nothing to delete there
        self.api.call("POST", DELETE_ELEMENTS_PATH, json={"element_id": element.element_id}, idempotent=True)

    # -- helpers -----------------------------------------------------------------------------------

    def _get(self, task_id: str, endpoints: list[str], *, once: bool = False) -> ProviderTask | None:
        """The task from the first endpoint that knows it; None when none does (404 / code 1203)."""
        for endpoint in endpoints:
            path = f"/v1/videos/{endpoint}/{task_id}"
            try:
                body = (
                    self.api.call_once("GET", path) if once else self.api.call("GET", path, idempotent=True)
                )
            except ProviderError as exc:
                if _is_not_found(exc):
                    continue
                raise
            task = parse_task(_data(body))
            self._memo.remember(task.task_id, endpoint)
            return task
        return None

    def _last_look(self, external_task_id: str, endpoint: str) -> ProviderTask | None:
        """Best effort after the attempts ran out: the error about to be raised matters more than this one."""
        try:
            return self._get(external_task_id, [endpoint], once=True)
        except (ProviderError, httpx.HTTPError):
            return None


def _ambiguous(exc: BaseException) -> bool:
    """True when the failed create may have reached Kling and created a task (5xx, read timeout, reset).

    Not when the request never left (connect errors) nor when Kling answered with a 4xx/429 refusal.
    """
    if isinstance(exc, ProviderError):
        return exc.http_status is None or exc.http_status >= 500
    return not is_unsent(exc)
