"""`POST /v1/uploads` (DESIGN.md §4): what a caller may upload as an input, and where it goes.

An upload is a presigned S3 POST for one object under `inputs/<tenant>/<upload id>/<name>`; the type and
the size limit (rules 5 and 8: images ≤ 10 MB, videos ≤ 200 MB) are conditions of the signed policy, so
S3 itself refuses anything else. The `s3://` URI is then used as an input, where the usual checks on the
bytes (dimensions, duration, ownership) apply before anything is spent.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kling_pipeline.domain.media.images import MAX_IMAGE_BYTES
from kling_pipeline.domain.media.video import MAX_VIDEO_BYTES

UploadContentType = Literal["image/jpeg", "image/png", "video/mp4", "video/quicktime"]

# The extension the key gets for each type: s3:// inputs are recognised by it (rules 5 and 8).
EXTENSIONS: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
}
FILENAME_MAX_CHARS = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRequest(BaseModel):
    """`POST /v1/uploads` body."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"filename": "portrait.png", "content_type": "image/png"}},
    )

    filename: str = Field(
        min_length=1, max_length=FILENAME_MAX_CHARS, description="Your file's name; kept (made safe)."
    )
    content_type: UploadContentType = Field(description="The file's type; S3 refuses any other.")
    size_bytes: int | None = Field(
        default=None, ge=1, description="When given, checked against the limit before anything is signed."
    )


def max_bytes(content_type: str) -> int:
    return MAX_IMAGE_BYTES if content_type.startswith("image/") else MAX_VIDEO_BYTES


def object_name(filename: str, content_type: str) -> str:
    """A safe last key segment that ends in the extension of `content_type` (how inputs are typed)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    wanted = EXTENSIONS[content_type]
    accepted = {wanted, "jpeg"} if wanted == "jpg" else {wanted}
    stem, dot, extension = base.rpartition(".")
    if not dot or extension.lower() not in accepted:
        stem = base
    safe = _UNSAFE.sub("-", stem).strip("-.")[:100] or "input"
    return f"{safe}.{wanted}"
