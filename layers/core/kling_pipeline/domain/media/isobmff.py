"""Just enough ISO-BMFF (MP4 / QuickTime) to read a movie's duration, frame size, frame rate and codec.

Why hand-rolled: we must validate videos that sit in S3 (up to 200 MB) and verify provider downloads
while they stream, reading only box headers and the `moov` box. Libraries that do this well
(pymediainfo, ffprobe, PyAV) need native binaries we do not want in a Lambda layer, and pure-Python
ones read whole files. The subset needed here is small and stable: box headers (32-bit, 64-bit
`size == 1`, and `size == 0` "to the end"), `mvhd`, `mvex/mehd`, and per track `tkhd`, `mdhd`, `hdlr`,
`stsd` and `stts`.

Everything here is pure: it parses bytes already read and raises `BoxError`; callers turn that into
the domain error that fits (a field issue for an input, `NotAnMp4` for a download).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

HEADER_MAX = 16  # 4-byte size + 4-byte type + optional 8-byte largesize
# The one box read whole, by the probe and by the stream verifier alike: a bound on what a hostile file costs.
MAX_MOOV_BYTES = 64 * 1024 * 1024
_MATRIX_ONE = 0x10000  # 1.0 in 16.16 fixed point
_UNKNOWN_DURATION_32 = 0xFFFFFFFF
_UNKNOWN_DURATION_64 = 0xFFFFFFFFFFFFFFFF


class BoxError(ValueError):
    """The bytes do not form the boxes we expect; the message says which box and why."""


@dataclass(frozen=True)
class BoxHeader:
    """A parsed box header. `size` is the whole box including the header; None means "to the end"."""

    type: str
    size: int | None
    header_size: int

    @property
    def payload_size(self) -> int | None:
        return None if self.size is None else self.size - self.header_size


def parse_box_header(data: bytes | bytearray | memoryview) -> BoxHeader | None:
    """Parse a box header from the start of `data`, or return None when more bytes are needed.

    Needs 8 bytes, or 16 when the box uses a 64-bit size. Raises BoxError for an impossible size.
    """
    if len(data) < 8:
        return None
    size32 = int.from_bytes(data[0:4], "big")
    box_type = bytes(data[4:8]).decode("latin-1")
    if size32 == 1:
        if len(data) < 16:
            return None
        size = int.from_bytes(data[8:16], "big")
        header_size = 16
    elif size32 == 0:
        return BoxHeader(box_type, None, 8)
    else:
        size, header_size = size32, 8
    if size < header_size:
        raise BoxError(f"box {box_type!r} declares {size} bytes, less than its own {header_size}-byte header")
    return BoxHeader(box_type, size, header_size)


def is_plausible_type(box_type: str) -> bool:
    """Top-level box types are four printable ASCII characters; random bytes rarely are."""
    return len(box_type) == 4 and all(" " <= ch <= "~" for ch in box_type)


def iter_children(data: memoryview) -> Iterator[tuple[str, memoryview]]:
    """Yield (type, payload) for each box packed in `data` (a container box's payload)."""
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < 8:
            if not any(data[pos:end]):
                return  # QuickTime pads some containers with a zero 32-bit terminator
            raise BoxError("a child box header is cut short")
        header = parse_box_header(data[pos : pos + HEADER_MAX])
        if header is None:
            raise BoxError("a 64-bit child box header is cut short")
        box_end = end if header.size is None else pos + header.size
        if box_end > end:
            raise BoxError(f"box {header.type!r} runs past the end of its parent")
        yield header.type, data[pos + header.header_size : box_end]
        pos = box_end


def find_child(data: memoryview, box_type: str) -> memoryview | None:
    for child_type, payload in iter_children(data):
        if child_type == box_type:
            return payload
    return None


@dataclass(frozen=True)
class VideoTrack:
    width: int
    height: int
    fps: float | None
    codec: str | None


@dataclass(frozen=True)
class Movie:
    """What the `moov` box says: duration in seconds and the first video track, if any."""

    duration_s: float
    video: VideoTrack | None


def parse_moov(payload: bytes | memoryview) -> Movie:
    """Parse a `moov` box payload (the bytes after its header)."""
    data = memoryview(payload)
    mvhd = find_child(data, "mvhd")
    if mvhd is None:
        raise BoxError("the 'moov' box has no 'mvhd' (movie header)")
    timescale, duration = _timescale_and_duration(mvhd, "mvhd", v0_skip=8, v1_skip=16)
    if duration == 0:
        duration = _fragment_duration(data)
    video: VideoTrack | None = None
    for child_type, child in iter_children(data):
        if child_type == "trak":
            video = _parse_video_trak(child)
            if video is not None:
                break
    duration_s = duration / timescale if timescale else 0.0
    return Movie(duration_s=round(duration_s, 3), video=video)


def _u32(data: memoryview, offset: int, box: str, *, signed: bool = False) -> int:
    if offset + 4 > len(data):
        raise BoxError(f"the {box!r} box is too short")
    return int(struct.unpack_from(">i" if signed else ">I", data, offset)[0])


def _timescale_and_duration(box: memoryview, name: str, *, v0_skip: int, v1_skip: int) -> tuple[int, int]:
    """Read (timescale, duration) from an `mvhd`/`mdhd` full box, version 0 (32-bit) or 1 (64-bit)."""
    if len(box) < 4:
        raise BoxError(f"the {name!r} box is too short")
    version = box[0]
    if version == 1:
        offset = 4 + v1_skip
        if offset + 12 > len(box):
            raise BoxError(f"the {name!r} box is too short")
        timescale, duration = struct.unpack_from(">IQ", box, offset)
        unknown = _UNKNOWN_DURATION_64
    elif version == 0:
        offset = 4 + v0_skip
        if offset + 8 > len(box):
            raise BoxError(f"the {name!r} box is too short")
        timescale, duration = struct.unpack_from(">II", box, offset)
        unknown = _UNKNOWN_DURATION_32
    else:
        raise BoxError(f"the {name!r} box has unknown version {version}")
    return int(timescale), 0 if duration == unknown else int(duration)


def _fragment_duration(moov: memoryview) -> int:
    """A fragmented MP4 leaves `mvhd` duration at 0 and puts the total in `mvex/mehd`."""
    mvex = find_child(moov, "mvex")
    mehd = find_child(mvex, "mehd") if mvex is not None else None
    if mehd is None or len(mehd) < 8:
        return 0
    if mehd[0] == 1 and len(mehd) >= 12:
        return int(struct.unpack_from(">Q", mehd, 4)[0])
    return _u32(mehd, 4, "mehd")


def _parse_video_trak(trak: memoryview) -> VideoTrack | None:
    """Return the track's video properties, or None when it is not a video (`vide`) track."""
    mdia = find_child(trak, "mdia")
    if mdia is None:
        return None
    hdlr = find_child(mdia, "hdlr")
    if hdlr is None or bytes(hdlr[8:12]) != b"vide":
        return None
    mdhd = find_child(mdia, "mdhd")
    timescale = _timescale_and_duration(mdhd, "mdhd", v0_skip=8, v1_skip=16)[0] if mdhd is not None else 0
    stbl = _find_path(mdia, "minf", "stbl")
    codec, entry_width, entry_height = _sample_entry(stbl)
    fps = _average_fps(stbl, timescale)
    tkhd = find_child(trak, "tkhd")
    width, height = _display_size(tkhd) if tkhd is not None else (0, 0)
    if width == 0 or height == 0:
        # tkhd holds the presentation size; when a muxer leaves it empty the coded size is next best.
        width, height = entry_width, entry_height
    return VideoTrack(width=width, height=height, fps=fps, codec=codec)


def _find_path(data: memoryview, *path: str) -> memoryview | None:
    current: memoryview | None = data
    for name in path:
        if current is None:
            return None
        current = find_child(current, name)
    return current


def _display_size(tkhd: memoryview) -> tuple[int, int]:
    """Width and height (16.16 fixed point) from `tkhd`, swapped when the matrix turns by 90 degrees."""
    if len(tkhd) < 1:
        raise BoxError("the 'tkhd' box is too short")
    fields_end = 4 + (32 if tkhd[0] == 1 else 20)  # times, track id, reserved, duration
    matrix = fields_end + 16  # reserved(8), layer, alternate group, volume, reserved
    size_at = matrix + 36
    a, b = _u32(tkhd, matrix, "tkhd", signed=True), _u32(tkhd, matrix + 4, "tkhd", signed=True)
    width = round(_u32(tkhd, size_at, "tkhd") / _MATRIX_ONE)
    height = round(_u32(tkhd, size_at + 4, "tkhd") / _MATRIX_ONE)
    if a == 0 and abs(b) == _MATRIX_ONE:
        return height, width
    return width, height


def _sample_entry(stbl: memoryview | None) -> tuple[str | None, int, int]:
    """Codec four-cc and coded width/height from the first `stsd` entry (a VisualSampleEntry)."""
    stsd = find_child(stbl, "stsd") if stbl is not None else None
    if stsd is None or len(stsd) < 8:
        return None, 0, 0
    for entry_type, entry in iter_children(stsd[8:]):
        if len(entry) < 28:
            return entry_type, 0, 0
        # SampleEntry: reserved(6) + data_reference_index(2); VisualSampleEntry: pre_defined/reserved(16)
        width, height = struct.unpack_from(">HH", entry, 24)
        return entry_type, int(width), int(height)
    return None, 0, 0


def _average_fps(stbl: memoryview | None, timescale: int) -> float | None:
    """Frames per second = samples / (sum of `stts` deltas / media timescale); None when unknown."""
    stts = find_child(stbl, "stts") if stbl is not None else None
    if stts is None or timescale == 0:
        return None
    entries = _u32(stts, 4, "stts")
    if 8 + entries * 8 > len(stts):
        raise BoxError("the 'stts' box is shorter than its entry count says")
    samples = ticks = 0
    for index in range(entries):
        count, delta = struct.unpack_from(">II", stts, 8 + index * 8)
        samples += count
        ticks += count * delta
    if samples == 0 or ticks == 0:
        return None
    return round(samples * timescale / ticks, 3)
