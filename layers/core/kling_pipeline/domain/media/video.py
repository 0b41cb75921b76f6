"""Video input probing and DESIGN.md §5 rule 8 (MP4/MOV, <= 200 MB, 3-10 s, 720-2160 px, 24-60 fps).

`probe_video` walks the top-level boxes by reading only their headers (16 bytes each, seeking over
`mdat`), then reads the `moov` box in one range. For a 50 MB file with `moov` at the end (ffmpeg's
default without `+faststart`) that is four or five small reads plus the `moov` itself: a few KB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kling_pipeline.domain.media.isobmff import (
    HEADER_MAX,
    MAX_MOOV_BYTES,
    BoxError,
    is_plausible_type,
    parse_box_header,
    parse_moov,
)
from kling_pipeline.domain.media.readers import RangeReader
from kling_pipeline.errors import FieldIssue, InvalidInput

VideoContainer = Literal["mp4", "mov"]

MAX_VIDEO_BYTES = 200 * 1024 * 1024
MIN_DURATION_S, MAX_DURATION_S = 3.0, 10.0
MIN_SIDE_PX, MAX_SIDE_PX = 720, 2160
MIN_FPS, MAX_FPS = 24.0, 60.0
# Container timing is not exact: an AAC track's priming samples make a 10 s clip report ~10.02 s,
# and NTSC "24p" is 23.976 fps. Both are what users mean by 10 s and 24 fps.
DURATION_TOLERANCE_S = 0.05
FPS_TOLERANCE = 0.05
# QuickTime files from before ftyp existed start straight with one of these.
_LEGACY_QT_FIRST_BOXES = frozenset({"moov", "mdat", "wide", "free", "skip", "pnot"})
# What one probe may cost, whatever the file: every read is a ranged GET (S3 or a web server), so a file of
# a million 8-byte boxes must not become a million requests. Real files have 3-8 top-level boxes.
MAX_TOP_LEVEL_BOXES = 64
_MIB = 1024 * 1024
_NOT_ISO = "is not an MP4 or MOV file (it does not start with an ISO-BMFF 'ftyp' box)"


@dataclass(frozen=True)
class VideoInfo:
    container: VideoContainer
    duration_s: float
    width: int
    height: int
    fps: float | None
    size_bytes: int
    codec: str | None


def probe_video(reader: RangeReader, *, field: str = "video") -> VideoInfo:
    """Read a video's properties from its headers; raises InvalidInput (addressed to `field`) when the
    bytes are not a complete MP4/MOV with a video track."""
    size = reader.size
    if size > MAX_VIDEO_BYTES:  # before any read: the size alone decides
        raise InvalidInput.for_field(field, _too_big(size))
    offset = 0
    boxes = 0
    brand: str | None = None
    container: VideoContainer | None = None
    moov: bytes | None = None
    saw_mdat = False
    while offset < size and not (moov is not None and saw_mdat):
        boxes += 1
        if boxes > MAX_TOP_LEVEL_BOXES:
            raise _invalid(field, f"has more than {MAX_TOP_LEVEL_BOXES} top-level boxes; not a plain MP4/MOV")
        head = reader.read(offset, min(HEADER_MAX, size - offset))
        try:
            header = parse_box_header(head)
        except BoxError as exc:
            raise _invalid(field, f"is corrupt at byte {offset}: {exc}") from None
        if header is None or not is_plausible_type(header.type):
            raise _invalid(field, _NOT_ISO if offset == 0 else f"is corrupt: no valid box at byte {offset}")
        if offset == 0 and header.type != "ftyp":
            if header.type not in _LEGACY_QT_FIRST_BOXES:
                raise _invalid(field, _NOT_ISO)
            container = "mov"
        box_size = size - offset if header.size is None else header.size
        if offset + box_size > size:
            raise _invalid(
                field,
                f"is truncated: its {header.type!r} box ends at byte {offset + box_size} "
                f"but the file has {size} bytes",
            )
        payload_at, payload_size = offset + header.header_size, box_size - header.header_size
        if header.type == "ftyp" and brand is None:
            brand = _major_brand(
                reader,
                head[header.header_size :],
                payload_at=payload_at,
                payload_size=payload_size,
                field=field,
            )
            container = "mov" if brand == "qt  " else "mp4"
        elif header.type == "moov" and moov is None:
            if payload_size > MAX_MOOV_BYTES:
                raise _invalid(field, f"has a {payload_size // _MIB} MB 'moov' box; too big to read")
            moov = reader.read(payload_at, payload_size)
        elif header.type == "mdat":
            saw_mdat = True
        offset += box_size
    if moov is None:
        raise _invalid(field, "has no 'moov' box: not a complete MP4/MOV file")
    if not saw_mdat:
        raise _invalid(field, "has no 'mdat' box: the file holds no media data")
    try:
        movie = parse_moov(moov)
    except BoxError as exc:
        raise _invalid(field, f"has a corrupt 'moov' box: {exc}") from None
    if movie.video is None:
        raise _invalid(field, "has no video track")
    return VideoInfo(
        container=container or "mp4",
        duration_s=movie.duration_s,
        width=movie.video.width,
        height=movie.video.height,
        fps=movie.video.fps,
        size_bytes=size,
        codec=movie.video.codec,
    )


def check_video(info: VideoInfo, field: str) -> list[FieldIssue]:
    """Every rule-8 problem with a probed video, each phrased so the user knows what to change."""
    issues: list[FieldIssue] = []
    if info.size_bytes > MAX_VIDEO_BYTES:
        issues.append(FieldIssue(field, _too_big(info.size_bytes)))
    if not (
        MIN_DURATION_S - DURATION_TOLERANCE_S <= info.duration_s <= MAX_DURATION_S + DURATION_TOLERANCE_S
    ):
        issues.append(
            FieldIssue(
                field,
                f"video is {info.duration_s:.2f} s long; it must be between "
                f"{MIN_DURATION_S:g} and {MAX_DURATION_S:g} s",
            )
        )
    if not all(MIN_SIDE_PX <= side <= MAX_SIDE_PX for side in (info.width, info.height)):
        issues.append(
            FieldIssue(
                field,
                f"video is {info.width}x{info.height} px; width and height must be between "
                f"{MIN_SIDE_PX} and {MAX_SIDE_PX} px",
            )
        )
    if info.fps is None:
        issues.append(
            FieldIssue(field, "video frame rate could not be read; it must be between 24 and 60 fps")
        )
    elif not (MIN_FPS - FPS_TOLERANCE <= info.fps <= MAX_FPS + FPS_TOLERANCE):
        issues.append(
            FieldIssue(
                field,
                f"video is {info.fps:g} fps; the frame rate must be between {MIN_FPS:g} and {MAX_FPS:g} fps",
            )
        )
    return issues


def _major_brand(
    reader: RangeReader, already_read: bytes, *, payload_at: int, payload_size: int, field: str
) -> str:
    """The `ftyp` major brand; the 16-byte header read already holds it unless the header is 64-bit."""
    if payload_size < 8:
        raise _invalid(field, "is corrupt: its 'ftyp' box is too short")
    brand = already_read[:4]
    if len(brand) < 4:
        brand = reader.read(payload_at, 4)
    return brand.decode("latin-1")


def _too_big(size: int) -> str:
    return f"video is {size / _MIB:.1f} MB; the maximum is {MAX_VIDEO_BYTES // _MIB} MB"


def _invalid(field: str, issue: str) -> InvalidInput:
    """Probe failures read like check issues ("video is truncated: ..."), addressed to the input field."""
    return InvalidInput.for_field(field, f"video {issue}")
