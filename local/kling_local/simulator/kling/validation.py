"""Body checks of the official Kling API's create endpoints (seed 003; docs/providers.md for the rest).

Strict where the specification is explicit (enums, `duration` as a *string* "3"…"15", shot sums, frame
rules), because the point is to catch an adapter that sends what Kling would refuse. Fields the API does
not know are ignored, as Kling does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kling_local.simulator.media import ASPECT_RATIOS, OutputSpec, hinted_duration, output_spec
from kling_local.simulator.tags import Tag, prompts_of, tags_in
from kling_local.simulator.validation import (
    Invalid,
    check_reference_counts,
    check_shots,
    check_watermark,
    element_ids,
    enum_str,
    optional_bool,
    optional_str,
    require,
)

OMNI_MODELS = ("kling-video-o1", "kling-v3-omni")
CLASSIC_MODELS = (
    "kling-v1",
    "kling-v1-5",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
    "kling-v2-6",
    "kling-v3",
)
DURATIONS = tuple(str(n) for n in range(3, 16))
VIDEO_DURATIONS = tuple(str(n) for n in range(3, 11))
MAX_PROMPT = 2500
QUALITY = {"std": "720p", "pro": "1080p"}


@dataclass(frozen=True)
class KlingCreate:
    """A create body that passed validation, reduced to what the simulator needs."""

    model_name: str
    mode: str
    spec: OutputSpec
    tags: frozenset[Tag]
    external_task_id: str | None
    callback_url: str | None


def _duration(body: dict[str, Any], allowed: tuple[str, ...]) -> int:
    value = body.get("duration", "5")
    require(isinstance(value, str), 'duration must be a string, e.g. "5"')
    require(value in allowed, f"duration must be one of {allowed[0]}…{allowed[-1]} (seconds); got {value!r}")
    return int(value)


def _shots_and_prompt(body: dict[str, Any], duration: int, *, prompt_required: bool) -> list[dict[str, Any]]:
    """multi_shot rules: customize needs multi_prompt summing to the duration; otherwise a prompt."""
    prompt = optional_str(body, "prompt", max_len=MAX_PROMPT)
    if optional_bool(body, "multi_shot", False):
        shot_type = enum_str(body, "shot_type", ("customize", "intelligence"), None)
        require(shot_type is not None, "shot_type is required when multi_shot is true")
        if shot_type == "customize":
            return check_shots(body.get("multi_prompt"), duration)
        require(bool(prompt and prompt.strip()), "prompt must not be empty when shot_type is intelligence")
        return []
    if prompt_required:
        require(bool(prompt and prompt.strip()), "prompt must not be empty")
    return []


def _common(body: dict[str, Any]) -> tuple[str | None, str | None]:
    external_task_id = optional_str(body, "external_task_id", max_len=128)
    callback_url = optional_str(body, "callback_url", max_len=2048)
    check_watermark(body.get("watermark_info"), "watermark_info")
    require(external_task_id != "", "external_task_id must not be empty")
    return external_task_id, callback_url


def validate_omni(body: dict[str, Any]) -> KlingCreate:
    """POST /v1/videos/omni-video."""
    model_name = str(enum_str(body, "model_name", OMNI_MODELS, "kling-video-o1"))
    mode = str(enum_str(body, "mode", ("std", "pro"), "pro"))
    sound = enum_str(body, "sound", ("on", "off"), "off") == "on"
    images = body.get("image_list") or []
    require(isinstance(images, list), "image_list must be an array")
    types: list[str | None] = []
    for image in images:
        require(isinstance(image, dict), "image_list entries must be objects")
        url = image.get("image_url")
        require(isinstance(url, str) and url.strip() != "", "image_list[].image_url must not be empty")
        image_type = image.get("type")
        require(
            image_type in (None, "first_frame", "end_frame"),
            "image_list[].type must be first_frame or end_frame",
        )
        types.append(image_type)
    first, end = "first_frame" in types, "end_frame" in types
    require(
        types.count("first_frame") <= 1 and types.count("end_frame") <= 1,
        "at most one first and one end frame",
    )
    require(not end or first, "an end_frame requires a first_frame")
    require(not end or len(images) <= 2, "an end frame is not supported with more than 2 images")
    elements = element_ids(body.get("element_list"), "element_list")
    videos = body.get("video_list") or []
    require(isinstance(videos, list) and len(videos) <= 1, "video_list supports at most 1 video")
    base_video: str | None = None
    keep_sound = False
    for video in videos:
        require(isinstance(video, dict), "video_list entries must be objects")
        url = video.get("video_url")
        require(isinstance(url, str) and url.strip() != "", "video_list[].video_url must not be empty")
        refer_type = enum_str(video, "refer_type", ("feature", "base"), "base")
        keep_sound = enum_str(video, "keep_original_sound", ("yes", "no"), "yes") == "yes"
        if refer_type == "base":
            base_video = url
    has_video = bool(videos)
    require(
        not (base_video and (first or end)),
        "first/end frames cannot be combined with video editing (refer_type=base)",
    )
    require(not (has_video and sound), "sound must be off when video_list is given")
    check_reference_counts(len(images), len(elements), has_video, first)
    aspect_ratio = enum_str(body, "aspect_ratio", ASPECT_RATIOS, None)
    require(
        aspect_ratio is not None or first or base_video is not None,
        "aspect_ratio is required unless a first frame or a video to edit (refer_type=base) is given",
    )
    if base_video is not None:
        try:
            seconds = hinted_duration(base_video)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        duration = round(seconds)
    else:
        duration = _duration(body, VIDEO_DURATIONS if has_video else DURATIONS)
        seconds = float(duration)
    shots = _shots_and_prompt(body, duration, prompt_required=True)
    external_task_id, callback_url = _common(body)
    audio = sound or (base_video is not None and keep_sound)
    return KlingCreate(
        model_name=model_name,
        mode=mode,
        spec=output_spec(QUALITY[mode], aspect_ratio, seconds, audio),
        tags=tags_in(prompts_of(body, shots)),
        external_task_id=external_task_id,
        callback_url=callback_url,
    )


def _classic(body: dict[str, Any], *, image_to_video: bool) -> KlingCreate:
    model_name = str(enum_str(body, "model_name", CLASSIC_MODELS, "kling-v1"))
    mode = str(enum_str(body, "mode", ("std", "pro"), "std"))
    sound = enum_str(body, "sound", ("on", "off"), "off") == "on"
    optional_str(body, "negative_prompt", max_len=MAX_PROMPT)
    cfg_scale = body.get("cfg_scale")
    if cfg_scale is not None:
        require(
            isinstance(cfg_scale, (int, float)) and not isinstance(cfg_scale, bool) and 0 <= cfg_scale <= 1,
            "cfg_scale must be a number between 0 and 1",
        )
    duration = _duration(body, DURATIONS)
    aspect_ratio: str | None = None
    if image_to_video:
        first = optional_str(body, "image")
        end = optional_str(body, "image_tail")
        require(bool(first) or bool(end), "image or image_tail is required")
        require(not end or bool(first), "image_tail (end frame) requires image (first frame)")
        elements = element_ids(body.get("element_list"), "element_list")
        check_reference_counts(1 + bool(end), len(elements), False, True)
    else:
        aspect_ratio = enum_str(body, "aspect_ratio", ASPECT_RATIOS, "16:9")
    shots = _shots_and_prompt(body, duration, prompt_required=not image_to_video)
    external_task_id, callback_url = _common(body)
    return KlingCreate(
        model_name=model_name,
        mode=mode,
        spec=output_spec(QUALITY[mode], aspect_ratio, float(duration), sound),
        tags=tags_in(prompts_of(body, shots)),
        external_task_id=external_task_id,
        callback_url=callback_url,
    )


def validate_text2video(body: dict[str, Any]) -> KlingCreate:
    """POST /v1/videos/text2video."""
    return _classic(body, image_to_video=False)


def validate_image2video(body: dict[str, Any]) -> KlingCreate:
    """POST /v1/videos/image2video (no aspect_ratio: the output follows the image, rendered 16:9)."""
    return _classic(body, image_to_video=True)


VALIDATORS = {
    "omni-video": validate_omni,
    "text2video": validate_text2video,
    "image2video": validate_image2video,
}
