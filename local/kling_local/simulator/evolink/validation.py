"""Body checks of EvoLink's `POST /v1/videos/generations` for the Kling O3 models (seeds 000, 001, 002).

Where the gateway is lenient the simulator is too: sound is silently forced off with a video input
(seed 000), first-frame aliases `image` / `image_url` and video aliases `video_urls` / `video` are
honoured in the documented priority. The callback URL must be HTTPS on a public host, except loopback
(http or https), which the simulator accepts because the local stack listens on 127.0.0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kling_local.simulator.media import ASPECT_RATIOS, OutputSpec, hinted_duration, output_spec
from kling_local.simulator.pricing import evolink_cost
from kling_local.simulator.tags import Tag, prompts_of, tags_in
from kling_local.simulator.validation import (
    Invalid,
    check_callback_url,
    check_reference_counts,
    check_shots,
    check_watermark,
    element_ids,
    enum_str,
    optional_bool,
    optional_str,
    require,
    url_list,
)

TEXT, IMAGE, REFERENCE, EDIT = (
    "kling-o3-text-to-video",
    "kling-o3-image-to-video",
    "kling-o3-reference-to-video",
    "kling-o3-video-edit",
)
VIDEO_MODELS = (TEXT, IMAGE, REFERENCE, EDIT)
ELEMENT_MODEL = "kling-custom-element"
MAX_PROMPT = 2500
MAX_REFERENCE_IMAGES = 7
MAX_ELEMENT_REFERENCES = 3


@dataclass(frozen=True)
class EvolinkCreate:
    model: str
    spec: OutputSpec | None  # None for kling-custom-element
    tags: frozenset[Tag]
    callback_url: str | None
    credits: Decimal
    cost_usd: Decimal


def _first(body: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            require(isinstance(value, str) and value.strip() != "", f"{name} must be a non-empty URL")
            return str(value)
    return None


def _duration(body: dict[str, Any], has_video: bool) -> int:
    value = body.get("duration", 5)
    require(isinstance(value, int) and not isinstance(value, bool), "duration must be an integer")
    high = 10 if has_video else 15
    require(3 <= value <= high, f"duration must be between 3 and {high} seconds")
    return int(value)


def validate_element(body: dict[str, Any]) -> EvolinkCreate:
    name = optional_str(body, "element_name", max_len=100)
    require(bool(name and name.strip()), "element_name is required")
    optional_str(body, "element_description", max_len=500)
    require(_first(body, "frontal_image_url") is not None, "frontal_image_url is required")
    references = url_list(body.get("reference_image_urls"), "reference_image_urls")
    require(
        len(references) <= MAX_ELEMENT_REFERENCES, f"at most {MAX_ELEMENT_REFERENCES} reference_image_urls"
    )
    return EvolinkCreate(
        model=ELEMENT_MODEL,
        spec=None,
        tags=tags_in([name, body.get("element_description")]),
        callback_url=check_callback_url(body.get("callback_url")),
        credits=Decimal(0),
        cost_usd=Decimal(0),
    )


@dataclass(frozen=True)
class _Inputs:
    """The media of a request, after EvoLink's alias priorities (image_start > image > image_url, …)."""

    first: str | None
    end: str | None
    references: list[str]
    video: str | None
    elements: list[str]

    @property
    def images(self) -> int:
        return len(self.references) + (self.first is not None) + (self.end is not None)


def _inputs(body: dict[str, Any], params: dict[str, Any]) -> _Inputs:
    inputs = _Inputs(
        first=_first(body, "image_start", "image", "image_url"),
        end=_first(body, "image_end"),
        references=url_list(body.get("image_urls"), "image_urls"),
        video=_first(body, "video_url", "video_urls", "video"),
        elements=element_ids(params.get("element_list"), "model_params.element_list"),
    )
    require(
        len(inputs.references) <= MAX_REFERENCE_IMAGES,
        f"image_urls supports at most {MAX_REFERENCE_IMAGES} images",
    )
    require(inputs.end is None or inputs.first is not None, "image_end (last frame) requires image_start")
    require(inputs.end is None or inputs.images <= 2, "image_end is not supported with more than 2 images")
    check_reference_counts(
        inputs.images, len(inputs.elements), inputs.video is not None, inputs.first is not None
    )
    return inputs


def _check_mode(model: str, inputs: _Inputs) -> None:
    """What each of the four models requires or refuses."""
    has_video = inputs.video is not None
    if model == IMAGE:
        require(inputs.images > 0, "at least one image is required: image_start, image_end or image_urls")
    if model == REFERENCE:
        require(
            has_video or bool(inputs.references) or bool(inputs.elements),
            "a reference video, reference images or elements are required",
        )
    if model == EDIT:
        require(has_video, "video_url is required for video editing")
        require(
            inputs.first is None and inputs.end is None,
            "first/last frames cannot be combined with video editing",
        )
    if model == TEXT:
        require(
            not has_video and inputs.images == 0, "text-to-video takes no images or video; use another model"
        )


def _shots(body: dict[str, Any], params: dict[str, Any], model: str, duration: int) -> list[dict[str, Any]]:
    prompt = optional_str(body, "prompt", max_len=MAX_PROMPT)
    check_watermark(params.get("watermark_info"), "model_params.watermark_info")
    if optional_bool(params, "multi_shot", False):
        require(
            params.get("shot_type") == "customize",
            "model_params.shot_type must be 'customize' with multi_shot",
        )
        return check_shots(params.get("multi_prompt"), duration, "model_params.multi_prompt")
    if model in (TEXT, EDIT):
        require(bool(prompt and prompt.strip()), "prompt is required")
    return []


def validate_generation(body: dict[str, Any]) -> EvolinkCreate:
    model = body.get("model")
    if model == ELEMENT_MODEL:
        return validate_element(body)
    require(model in VIDEO_MODELS, f"model must be one of {', '.join((*VIDEO_MODELS, ELEMENT_MODEL))}")
    assert isinstance(model, str)
    params = body.get("model_params") or {}
    require(isinstance(params, dict), "model_params must be an object")
    quality = str(enum_str(body, "quality", ("720p", "1080p", "4k"), "720p"))
    sound = enum_str(body, "sound", ("on", "off"), "off") == "on"
    aspect_ratio = enum_str(body, "aspect_ratio", ASPECT_RATIOS, None)
    keep_sound = optional_bool(body, "keep_original_sound", True)
    inputs = _inputs(body, params)
    _check_mode(model, inputs)
    duration = _duration(body, inputs.video is not None)
    seconds = float(duration)
    if model == EDIT:
        assert inputs.video is not None
        try:
            seconds = hinted_duration(inputs.video)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        duration = round(seconds)
    shots = _shots(body, params, model, duration)
    if inputs.video is not None:
        sound = False  # seed 000: forced off with a video input, the parameter is ignored
    credits, usd = evolink_cost(model, quality, sound, seconds)
    return EvolinkCreate(
        model=model,
        spec=output_spec(quality, aspect_ratio, seconds, sound or (model == EDIT and keep_sound)),
        tags=tags_in(prompts_of(body, shots)),
        callback_url=check_callback_url(body.get("callback_url")),
        credits=credits,
        cost_usd=usd,
    )
