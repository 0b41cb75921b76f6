"""Body checks of kling3api's `POST /api/generate` (seed 004), with the seed's error codes.

The seed names INVALID_PROMPT, INVALID_DURATION, INVALID_TYPE, MISSING_IMAGE and MISSING_VIDEO; other
malformed fields (aspect ratio, cfg_scale, too many images) get `INVALID_PARAMETER`, still HTTP 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kling_local.simulator.media import ASPECT_RATIOS, OutputSpec, hinted_duration, output_spec
from kling_local.simulator.pricing import kling3api_credits
from kling_local.simulator.tags import Tag, prompts_of, tags_in
from kling_local.simulator.validation import Invalid, optional_bool, require, url_list

CLASSIC_TYPES = tuple(f"{tier}-{mode}-to-video" for tier in ("pro", "std") for mode in ("text", "image"))
O3_TYPES = tuple(
    f"o3-{tier}-{mode}"
    for tier in ("pro", "std")
    for mode in ("text-to-video", "image-to-video", "reference-to-video", "video-edit")
)
MAX_PROMPT = 2000
MAX_IMAGES = 7


@dataclass(frozen=True)
class K3Create:
    task_type: str
    spec: OutputSpec
    tags: frozenset[Tag]
    credits: int

    @property
    def is_o3(self) -> bool:
        return self.task_type.startswith("o3-")


def _url(body: dict[str, Any], name: str, missing_code: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    require(isinstance(value, str) and value.strip() != "", f"{name} must be a non-empty URL", missing_code)
    return str(value)


def validate_generate(body: dict[str, Any]) -> K3Create:
    task_type = body.get("type")
    require(task_type in CLASSIC_TYPES + O3_TYPES, f"Unsupported task type: {task_type!r}", "INVALID_TYPE")
    assert isinstance(task_type, str)
    prompt = body.get("prompt")
    require(prompt is None or isinstance(prompt, str), "prompt must be a string", "INVALID_PROMPT")
    require(
        len(prompt or "") <= MAX_PROMPT, f"prompt must not exceed {MAX_PROMPT} characters", "INVALID_PROMPT"
    )
    if task_type.endswith(("text-to-video", "video-edit")):
        require(bool(prompt and prompt.strip()), "prompt is required", "INVALID_PROMPT")
    image = _url(body, "image", "MISSING_IMAGE")
    end_image = _url(body, "end_image", "MISSING_IMAGE")
    video = _url(body, "video", "MISSING_VIDEO")
    try:
        images = url_list(body.get("images"), "images")
    except Invalid as exc:
        raise Invalid(exc.message, "INVALID_PARAMETER") from None
    require(len(images) <= MAX_IMAGES, f"images supports at most {MAX_IMAGES} URLs", "INVALID_PARAMETER")
    if task_type.endswith("image-to-video"):
        require(image is not None, "image is required for image-to-video tasks", "MISSING_IMAGE")
    else:
        require(end_image is None, "end_image is only supported for image-to-video", "INVALID_PARAMETER")
    if task_type.endswith("reference-to-video"):
        require(bool(images) or video is not None, "images or video is required", "MISSING_IMAGE")
    if task_type.endswith("video-edit"):
        require(video is not None, "video is required for video-edit tasks", "MISSING_VIDEO")
    aspect_ratio = body.get("aspect_ratio", "16:9")
    require(
        aspect_ratio in ASPECT_RATIOS, f"aspect_ratio must be one of {ASPECT_RATIOS}", "INVALID_PARAMETER"
    )
    try:
        sound = optional_bool(body, "sound", True)
        optional_bool(body, "keep_original_sound", True)
    except Invalid as exc:
        raise Invalid(exc.message, "INVALID_PARAMETER") from None
    cfg_scale = body.get("cfg_scale")
    if cfg_scale is not None and task_type in CLASSIC_TYPES:
        require(
            isinstance(cfg_scale, (int, float)) and not isinstance(cfg_scale, bool) and 0 <= cfg_scale <= 1,
            "cfg_scale must be between 0 and 1",
            "INVALID_PARAMETER",
        )
    if task_type.endswith("video-edit"):
        assert video is not None
        try:
            seconds = hinted_duration(video)
        except ValueError as exc:
            raise Invalid(str(exc), "INVALID_DURATION") from None
        sound = bool(body.get("keep_original_sound", True))
    else:
        duration = body.get("duration", 5)
        high = 10 if video is not None else 15
        require(
            isinstance(duration, int) and not isinstance(duration, bool) and 3 <= duration <= high,
            f"duration must be an integer between 3 and {high}",
            "INVALID_DURATION",
        )
        seconds = float(duration)
        if video is not None:
            sound = False
    quality = "1080p" if "pro-" in task_type else "720p"
    return K3Create(
        task_type=task_type,
        spec=output_spec(quality, str(aspect_ratio), seconds, sound),
        tags=tags_in(prompts_of(body, None)),
        credits=kling3api_credits(task_type, sound, seconds),
    )
