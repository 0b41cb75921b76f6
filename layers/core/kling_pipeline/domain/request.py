"""The unified, provider-neutral generation request (`POST /v1/generations` body, DESIGN.md §4).

Field names are our public contract. Every rule of DESIGN.md §5 that can be checked without the media
bytes is enforced here, before any provider is called; rules 5 and 8 (image/video properties) are checked
where the bytes are visible (s3:// inputs, S3 uploads) — here only what a URL reveals: the scheme
(`https://` or `s3://bucket/key`) and, when the path shows one, the file extension.

Normalisation (what `request` echoes, "as accepted, with defaults filled"):

- `duration` omitted → the sum of the shots, else 5. For video-edit it is set to null whatever was sent:
  the output is as long as the input video (seed 003) and billing follows that length.
- `aspect_ratio` omitted → stays null when a first frame is given (the output follows the image) and for
  video-edit (set to null there, the output keeps the input's frame); text-to-video gets "16:9", every
  provider's own default; image- and reference-to-video without a first frame must say which shape they
  want (the reference images do not define the output frame).
- A blank `prompt`/`negative_prompt` counts as omitted. Nothing else is changed behind the caller's back:
  `sound: true` with a video input is an error, not silently turned off.

Model capabilities (seed 003's capability map, our reading of it): `kling-o3` (Omni) does all four
modes. `kling-3.0` (`kling-v3`) is text- and image-to-video only, through endpoints that take a first and
end frame and elements but no reference images; it alone takes `negative_prompt`/`cfg_scale`. `kling-o1`
runs on the Omni endpoint (all four modes) but predates multi-shot and sound generation, which the map
lists for the 3.0 models only.

Not checkable here: "no video-character elements with a video input" (rule 7) needs the element's type,
which the element store knows; the kling3api prompt limit (2000) is a routing rule, not a request rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from kling_pipeline.domain import provider_name
from kling_pipeline.domain.placeholders import ReferableInputs, placeholder_issues
from kling_pipeline.domain.validation import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    RuleViolations,
    invalid_input,
    issues_from_validation_error,
    media_url_issue,
    webhook_url_issue,
)
from kling_pipeline.errors import FieldIssue

ProviderName = provider_name.ProviderName  # kept importable from here, where requests pin a provider

PROMPT_MAX_CHARS = 2500
SHOT_PROMPT_MAX_CHARS = 512
MAX_SHOTS = 6
DEFAULT_DURATION = 5
MIN_DURATION = 3  # also the billing minimum
MAX_DURATION = 15
MAX_DURATION_WITH_VIDEO = 10
MIN_INPUT_VIDEO_S = 3.0
MAX_INPUT_VIDEO_S = 10.0
MAX_IMAGES_AND_ELEMENTS = 7
MAX_IMAGES_AND_ELEMENTS_WITH_VIDEO = 4
MAX_ELEMENTS_WITH_FIRST_FRAME = 3
MAX_IMAGES_WITH_END_FRAME = 2
METADATA_MAX_KEYS = 20
METADATA_KEY_MAX_CHARS = 64
METADATA_VALUE_MAX_CHARS = 256


class Model(StrEnum):
    KLING_O3 = "kling-o3"
    KLING_3_0 = "kling-3.0"
    KLING_O1 = "kling-o1"


class Mode(StrEnum):
    TEXT_TO_VIDEO = "text-to-video"
    IMAGE_TO_VIDEO = "image-to-video"
    REFERENCE_TO_VIDEO = "reference-to-video"
    VIDEO_EDIT = "video-edit"


class Quality(StrEnum):
    P720 = "720p"
    P1080 = "1080p"
    K4 = "4k"


class AspectRatio(StrEnum):
    WIDE = "16:9"
    TALL = "9:16"
    SQUARE = "1:1"


VideoReferType = Literal["base", "feature"]


@dataclass(frozen=True)
class ModelCapabilities:
    """What a model accepts beyond the mode rules every model shares (see the module docstring)."""

    modes: frozenset[Mode]
    reference_images: bool
    multi_shot: bool
    sound: bool
    prompt_tuning: bool  # negative_prompt and cfg_scale


MODEL_CAPABILITIES: dict[Model, ModelCapabilities] = {
    Model.KLING_O3: ModelCapabilities(frozenset(Mode), True, True, True, False),
    Model.KLING_3_0: ModelCapabilities(
        frozenset({Mode.TEXT_TO_VIDEO, Mode.IMAGE_TO_VIDEO}), False, True, True, True
    ),
    Model.KLING_O1: ModelCapabilities(frozenset(Mode), True, False, False, False),
}


def _check_url(url: str, extensions: frozenset[str]) -> str:
    issue = media_url_issue(url, extensions, allow_http_loopback=allow_http_loopback())
    if issue:
        raise ValueError(issue)
    return url


def _image_url(url: str) -> str:
    return _check_url(url, IMAGE_EXTENSIONS)


def _video_url(url: str) -> str:
    return _check_url(url, VIDEO_EXTENSIONS)


def _number_to_text(value: Any) -> Any:
    """Kling shows element ids as numbers (`{"element_id": 789012}`); accept them and keep text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


ImageUrl = Annotated[str, AfterValidator(_image_url)]
VideoUrl = Annotated[str, AfterValidator(_video_url)]


class ElementRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    element_id: Annotated[str, BeforeValidator(_number_to_text)] = Field(min_length=1, max_length=64)


class VideoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: VideoUrl = Field(description="https:// or s3://bucket/key; MP4 or MOV, 3-10 s, at most 200 MB.")
    keep_original_sound: bool = True
    duration_s: float | None = Field(
        default=None,
        description="Length of the input video in seconds when known (measured by the pipeline for s3:// "
        "inputs); video-edit is billed on it.",
    )

    @field_validator("duration_s")
    @classmethod
    def _input_length(cls, value: float | None) -> float | None:
        if value is not None and not MIN_INPUT_VIDEO_S <= value <= MAX_INPUT_VIDEO_S:
            raise ValueError(
                f"input videos must be {MIN_INPUT_VIDEO_S:g}-{MAX_INPUT_VIDEO_S:g} seconds long, "
                f"got {value:g}"
            )
        return value


class Shot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(max_length=SHOT_PROMPT_MAX_CHARS)
    duration: int = Field(ge=1, description="Seconds; the shots' durations add up to the request's duration.")

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty: every shot needs its own prompt")
        return value


def allow_http_loopback() -> bool:
    """The local stack's switch (`LOCAL_ALLOW_HTTP_LOOPBACK=1`): inputs may be served from loopback."""
    from kling_pipeline.config import get_settings

    return get_settings().local_allow_http_loopback


def allow_private_webhooks() -> bool:
    """The local stack's switch (`LOCAL_ALLOW_PRIVATE_WEBHOOKS=1`), read when needed, never at import."""
    from kling_pipeline.config import get_settings

    return get_settings().local_allow_private_webhooks


MIN_DEADLINE_S = 30


class GenerationRequest(BaseModel):
    """Validated request with defaults filled in; what we store and echo back as `request`."""

    model_config = ConfigDict(extra="forbid")

    model: Model = Model.KLING_O3
    mode: Mode
    prompt: Annotated[str | None, BeforeValidator(_blank_to_none)] = Field(
        default=None,
        max_length=PROMPT_MAX_CHARS,
        description="Required for text-to-video (unless shots) and video-edit. Placeholders: <<<image_1>>> "
        "or @Image1 (reference_images[0]), <<<element_1>>> or @Element1, <<<video_1>>> or @Video1.",
    )
    negative_prompt: Annotated[str | None, BeforeValidator(_blank_to_none)] = Field(
        default=None, max_length=PROMPT_MAX_CHARS, description="kling-3.0 only."
    )
    duration: int | None = Field(
        default=DEFAULT_DURATION,
        description="Seconds, 3-15 (3-10 with a video input); default 5 or the sum of the shots. "
        "Null for video-edit: the output is as long as the input video.",
    )
    aspect_ratio: AspectRatio | None = Field(
        default=None,
        description="Follows the first frame when omitted with one; 16:9 for text-to-video; required for "
        "image-/reference-to-video without a first frame; unused by video-edit.",
    )
    quality: Quality = Quality.P720
    sound: bool = Field(default=False, description="Must be false with a video input.")
    first_frame: ImageUrl | None = None
    end_frame: ImageUrl | None = None
    reference_images: list[ImageUrl] = Field(default_factory=list, max_length=MAX_IMAGES_AND_ELEMENTS)
    elements: list[ElementRef] = Field(default_factory=list, max_length=MAX_IMAGES_AND_ELEMENTS)
    video: VideoInput | None = None
    shots: list[Shot] | None = Field(default=None, min_length=1, max_length=MAX_SHOTS)
    cfg_scale: float | None = Field(default=None, ge=0, le=1, description="kling-3.0 only.")
    watermark: bool = False
    provider: str | None = Field(default=None, description="Pin a provider: kling, evolink or kling3api.")
    webhook_url: str | None = Field(default=None, description="Public https:// URL, at most 2048 characters.")
    metadata: dict[str, str] = Field(
        default_factory=dict, description="At most 20 keys of at most 64 characters; values up to 256."
    )
    deadline_s: int | None = Field(
        default=None,
        ge=MIN_DEADLINE_S,
        description="Seconds until the generation gives up (failed, error.code timeout; a running EvoLink "
        "task is canceled at the provider). 30 up to the stack's TASK_DEADLINE_S, its default.",
    )

    # ---- helpers for adapters and pricing -------------------------------------------------------------

    @property
    def has_video_input(self) -> bool:
        return self.video is not None

    @property
    def image_count(self) -> int:
        """All images, frames included (the count Kling's limits are written against)."""
        frames = sum(1 for frame in (self.first_frame, self.end_frame) if frame)
        return frames + len(self.reference_images)

    @property
    def is_multi_shot(self) -> bool:
        return bool(self.shots)

    @property
    def video_refer_type(self) -> VideoReferType | None:
        """Kling's `refer_type` for our video: the video to edit (`base`) or a feature reference."""
        if self.video is None:
            return None
        return "base" if self.mode is Mode.VIDEO_EDIT else "feature"

    @property
    def effective_duration(self) -> int | None:
        """Seconds billed: video-edit bills the input video's length rounded to the nearest second
        (None while unknown); everything has a 3-second minimum."""
        if self.mode is Mode.VIDEO_EDIT:
            known = self.video.duration_s if self.video else None
            return None if known is None else max(MIN_DURATION, int(known + 0.5))
        return None if self.duration is None else max(MIN_DURATION, self.duration)

    @property
    def referable_inputs(self) -> ReferableInputs:
        """What prompt placeholders may point at (numbering: see `domain.placeholders`)."""
        return ReferableInputs(
            images=len(self.reference_images), elements=len(self.elements), videos=int(self.has_video_input)
        )

    # ---- single-field rules ---------------------------------------------------------------------------

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return ProviderName(value)
        except ValueError:
            names = ", ".join(name.value for name in ProviderName)
            raise ValueError(f"must be one of {names}, got {value!r}") from None

    @field_validator("webhook_url")
    @classmethod
    def _public_webhook(cls, value: str | None) -> str | None:
        if value is None:
            return None
        issue = webhook_url_issue(value)
        if issue and allow_private_webhooks():
            issue = webhook_url_issue(value, allow_private=True)
        if issue:
            raise ValueError(issue)
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str]) -> dict[str, str]:
        issues = []
        if len(value) > METADATA_MAX_KEYS:
            issues.append(FieldIssue("metadata", f"at most {METADATA_MAX_KEYS} keys, got {len(value)}"))
        for key, item in value.items():
            if not key or len(key) > METADATA_KEY_MAX_CHARS:
                shown = key if len(key) <= 20 else key[:20] + "…"
                issues.append(
                    FieldIssue(
                        "metadata",
                        f"keys must be 1-{METADATA_KEY_MAX_CHARS} characters, got {len(key)} ({shown!r})",
                    )
                )
            elif len(item) > METADATA_VALUE_MAX_CHARS:
                issues.append(
                    FieldIssue(
                        f"metadata.{key}",
                        f"must be at most {METADATA_VALUE_MAX_CHARS} characters, got {len(item)}",
                    )
                )
        if issues:
            raise RuleViolations(issues)
        return value

    # ---- cross-field rules ----------------------------------------------------------------------------

    @model_validator(mode="after")
    def _apply_rules(self) -> GenerationRequest:
        issues = [
            *_mode_issues(self),
            *_model_issues(self),
            *_input_count_issues(self),
            *_duration_issues(self),
            *_aspect_ratio_issues(self),
            *_placeholder_field_issues(self),
        ]
        if self.has_video_input and self.sound:
            issues.append(
                FieldIssue(
                    "sound",
                    "must be false when a video input is given (providers cannot add sound to it); "
                    "use video.keep_original_sound to keep the video's own audio",
                )
            )
        if issues:
            raise RuleViolations(_first_per_field(issues))
        self._normalise()
        return self

    def _normalise(self) -> None:
        if self.mode is Mode.VIDEO_EDIT:
            self.duration = None
            self.aspect_ratio = None
            return
        if "duration" not in self.model_fields_set or self.duration is None:
            self.duration = _shot_total(self) or DEFAULT_DURATION
        if self.aspect_ratio is None and self.mode is Mode.TEXT_TO_VIDEO:
            self.aspect_ratio = AspectRatio.WIDE


def _first_per_field(issues: list[FieldIssue]) -> list[FieldIssue]:
    """One issue per field: the first is the root cause, later ones on the same field are echoes of it."""
    seen: dict[str, FieldIssue] = {}
    for issue in issues:
        seen.setdefault(issue.field, issue)
    return list(seen.values())


def _shot_total(request: GenerationRequest) -> int | None:
    return sum(shot.duration for shot in request.shots) if request.shots else None


def _mode_issues(request: GenerationRequest) -> list[FieldIssue]:
    """Rules 1, 6 (first part) and 9: which inputs each mode needs and which it cannot take."""
    issues: list[FieldIssue] = []
    mode = request.mode
    if request.prompt is not None and request.shots:
        issues.append(
            FieldIssue("prompt", "cannot be combined with shots: give each shot its own prompt or drop shots")
        )
    if mode is Mode.TEXT_TO_VIDEO:
        if request.prompt is None and not request.shots:
            issues.append(FieldIssue("prompt", "required for text-to-video (or give shots)"))
        unused = {
            "first_frame": request.first_frame,
            "end_frame": request.end_frame,
            "reference_images": request.reference_images,
            "elements": request.elements,
            "video": request.video,
        }
        issues += [
            FieldIssue(name, "not used by text-to-video; use image-to-video or reference-to-video")
            for name, value in unused.items()
            if value
        ]
    elif mode is Mode.IMAGE_TO_VIDEO:
        if request.image_count == 0:
            issues.append(
                FieldIssue(
                    "first_frame",
                    "image-to-video needs at least one image: first_frame, end_frame or reference_images",
                )
            )
        if request.video is not None:
            issues.append(
                FieldIssue(
                    "video",
                    "not used by image-to-video; use reference-to-video (feature reference) or video-edit",
                )
            )
    elif mode is Mode.REFERENCE_TO_VIDEO:
        if not (request.reference_images or request.elements or request.video):
            issues.append(
                FieldIssue("reference_images", "reference-to-video needs reference_images, elements or video")
            )
    else:  # video-edit
        if request.video is None:
            issues.append(FieldIssue("video", "required for video-edit (the video to edit)"))
        if request.prompt is None:
            issues.append(FieldIssue("prompt", "required for video-edit: describe the edit"))
        if request.shots:
            issues.append(
                FieldIssue("shots", "not supported by video-edit: the output keeps its input's length")
            )
        issues += [
            FieldIssue(name, "cannot be combined with video-edit: the edited video keeps its own frames")
            for name, value in (("first_frame", request.first_frame), ("end_frame", request.end_frame))
            if value
        ]
    return issues


def _model_issues(request: GenerationRequest) -> list[FieldIssue]:
    """Rule 11 and the per-model capabilities (module docstring)."""
    model = request.model
    caps = MODEL_CAPABILITIES[model]
    issues: list[FieldIssue] = []
    if request.mode not in caps.modes:
        modes = " and ".join(sorted(caps.modes))
        issues.append(
            FieldIssue("mode", f"model {model} supports {modes} only, got {request.mode}; use kling-o3")
        )
    if request.reference_images and not caps.reference_images:
        issues.append(
            FieldIssue("reference_images", f"not supported by model {model} (frames only); use kling-o3")
        )
    if request.shots and not caps.multi_shot:
        issues.append(FieldIssue("shots", f"multi-shot is not supported by model {model}; use kling-o3"))
    if request.sound and not caps.sound:
        issues.append(FieldIssue("sound", f"model {model} cannot generate sound; send false or use kling-o3"))
    if not caps.prompt_tuning:
        tuning = {"negative_prompt": request.negative_prompt, "cfg_scale": request.cfg_scale}
        issues += [
            FieldIssue(name, f"only supported by model kling-3.0, got model {model}")
            for name, value in tuning.items()
            if value is not None
        ]
    return issues


def _input_count_issues(request: GenerationRequest) -> list[FieldIssue]:
    """Rules 6 (end frame) and 7 (how many images and elements fit together)."""
    issues: list[FieldIssue] = []
    images, elements = request.image_count, len(request.elements)
    if request.end_frame and request.mode is not Mode.VIDEO_EDIT:
        if not request.first_frame:
            issues.append(FieldIssue("end_frame", "needs a first_frame: an end frame alone is not supported"))
        elif images > MAX_IMAGES_WITH_END_FRAME:
            issues.append(
                FieldIssue(
                    "end_frame",
                    f"not supported with more than {MAX_IMAGES_WITH_END_FRAME} images in total, got {images} "
                    f"(first_frame, end_frame and {len(request.reference_images)} reference_images)",
                )
            )
    video = request.has_video_input
    limit = MAX_IMAGES_AND_ELEMENTS_WITH_VIDEO if video else MAX_IMAGES_AND_ELEMENTS
    when = " with a video input" if video else ""
    if images + elements > limit:
        field = "reference_images" if request.reference_images else "elements"
        issues.append(
            FieldIssue(
                field,
                f"images and elements together must be at most {limit}{when}, "
                f"got {images} image(s) + {elements} element(s) = {images + elements}",
            )
        )
    if request.first_frame and elements > MAX_ELEMENTS_WITH_FIRST_FRAME:
        issues.append(
            FieldIssue(
                "elements",
                f"at most {MAX_ELEMENTS_WITH_FIRST_FRAME} elements with a first_frame, got {elements}",
            )
        )
    return issues


def _duration_issues(request: GenerationRequest) -> list[FieldIssue]:
    """Rules 2 and 10 (the shots' sum); video-edit has no duration of its own."""
    if request.mode is Mode.VIDEO_EDIT:
        return []
    given = request.duration if "duration" in request.model_fields_set else None
    total = _shot_total(request)
    resolved = given if given is not None else (total or DEFAULT_DURATION)
    video = request.has_video_input
    top = MAX_DURATION_WITH_VIDEO if video else MAX_DURATION
    when = " with a video input" if video else ""
    if not MIN_DURATION <= resolved <= top:
        if given is None and request.shots:
            return [
                FieldIssue(
                    "shots",
                    f"shot durations add up to {total} seconds; the total must be "
                    f"{MIN_DURATION}-{top} seconds{when}",
                )
            ]
        return [FieldIssue("duration", f"must be {MIN_DURATION}-{top} seconds{when}, got {resolved}")]
    if request.shots and total != resolved:
        last = len(request.shots) - 1
        issue = f"durations must sum to duration ({resolved}), got {total}"
        return [FieldIssue(f"shots[{last}].duration", issue)]
    return []


def _aspect_ratio_issues(request: GenerationRequest) -> list[FieldIssue]:
    """Rule 3: only a first frame (the output follows it) or video-edit may leave the shape open."""
    exempt = request.first_frame or request.mode in (Mode.VIDEO_EDIT, Mode.TEXT_TO_VIDEO)
    if request.aspect_ratio is None and not exempt:
        choices = ", ".join(ratio.value for ratio in AspectRatio)
        return [
            FieldIssue("aspect_ratio", f"required when no first_frame is given: one of {choices}"),
        ]
    return []


def _placeholder_field_issues(request: GenerationRequest) -> list[FieldIssue]:
    """Placeholders in `prompt` and each `shots[i].prompt` must name inputs the request has."""
    inputs = request.referable_inputs
    texts = [("prompt", request.prompt)] + [
        (f"shots[{index}].prompt", shot.prompt) for index, shot in enumerate(request.shots or [])
    ]
    issues = []
    for field, text in texts:
        problems = placeholder_issues(text, inputs) if text else []
        if problems:
            issues.append(FieldIssue(field, "; ".join(problems)))
    return issues


def parse_generation_request(body: Mapping[str, Any]) -> GenerationRequest:
    """Validate a request body (API, S3 job file, EventBridge detail) into a normalised request.

    Raises `InvalidInput` whose `details` lists every problem found, each on the field a user wrote
    (`reference_images[2]`, `video.url`, `shots[1].duration`); nothing has been submitted or stored.
    Cross-field rules run once every field has the right shape, so a body with type errors reports those
    first.
    """
    try:
        return GenerationRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_input(issues_from_validation_error(exc)) from None
