"""The unified, provider-neutral generation request (`POST /v1/generations` body, DESIGN.md §4).

Field names are our public contract. Every rule of DESIGN.md §5 that can be checked without the media
bytes is enforced here; rules 5 and 8 (image/video properties) are checked by `domain.media` where the
bytes are visible (s3:// inputs, S3 uploads).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


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


class ElementRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    element_id: str = Field(min_length=1, max_length=64)


class VideoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    keep_original_sound: bool = True


class Shot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str
    duration: int


class GenerationRequest(BaseModel):
    """Validated request with defaults filled in; what we store and echo back as `request`."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    model: Model = Model.KLING_O3
    mode: Mode
    prompt: str | None = None
    negative_prompt: str | None = None
    duration: int | None = 5
    aspect_ratio: AspectRatio | None = None
    quality: Quality = Quality.P720
    sound: bool = False
    first_frame: str | None = None
    end_frame: str | None = None
    reference_images: list[str] = Field(default_factory=list)
    elements: list[ElementRef] = Field(default_factory=list)
    video: VideoInput | None = None
    shots: list[Shot] | None = None
    cfg_scale: float | None = None
    watermark: bool = False
    provider: str | None = None
    webhook_url: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
