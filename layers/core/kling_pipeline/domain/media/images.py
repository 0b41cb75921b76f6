"""Image input probing and DESIGN.md §5 rule 5 (JPG/JPEG/PNG, <= 10 MB, >= 300 px, 1:2.5 to 2.5:1).

The format comes from magic bytes (never the file name or content type, which users get wrong); the
size from `imagesize`, handed a small file-like view over a `RangeReader` that fetches 64 KiB blocks on
demand. A PNG needs the first block only; a JPEG whose SOF marker sits behind a large EXIF/ICC/XMP
prefix pulls a few more blocks, up to `MAX_HEADER_BYTES`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import imagesize

from kling_pipeline.domain.media.readers import RangeReader
from kling_pipeline.errors import FieldIssue, InvalidInput

ImageFormat = Literal["jpeg", "png", "webp", "gif", "bmp", "tiff", "heif"]

ACCEPTED_FORMATS: frozenset[ImageFormat] = frozenset({"jpeg", "png"})
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_SIDE_PX = 300
MAX_ASPECT = 2.5  # width/height within [1/2.5, 2.5]
BLOCK_BYTES = 64 * 1024
MAX_HEADER_BYTES = 2 * 1024 * 1024
_MIB = 1024 * 1024
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis")


@dataclass(frozen=True)
class ImageInfo:
    """Probed image; `width`/`height` are as displayed (EXIF rotation applied), 0 when not read."""

    format: ImageFormat
    width: int
    height: int
    size_bytes: int


def detect_image_format(head: bytes) -> ImageFormat | None:
    """Identify an image by its first bytes (16 are enough)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "heif"
    return None


def probe_image(reader: RangeReader, *, field: str = "image") -> ImageInfo:
    """Read an image's format and pixel size from its header; raises InvalidInput (addressed to
    `field`) when the bytes are not a recognisable image."""
    view = _ReaderFile(reader)
    image_format = detect_image_format(view.peek(16))
    if image_format is None:
        raise InvalidInput.for_field(field, "image is not a JPEG or PNG file (unrecognised content)")
    try:
        info = imagesize.get_info(view, dpi=False, colors=False, channels=False)
    except _HeaderTooLong:
        raise InvalidInput.for_field(
            field, f"image header is longer than {MAX_HEADER_BYTES // _MIB} MB; cannot read its size"
        ) from None
    except (ValueError, OSError):  # imagesize's report for a corrupt or cut-short header
        info = None
    width, height = (info.width, info.height) if info is not None else (-1, -1)
    if width <= 0 or height <= 0:
        if image_format in ACCEPTED_FORMATS:
            raise InvalidInput.for_field(
                field, f"image is a corrupt {image_format.upper()} file (no pixel size)"
            )
        width = height = 0  # rejected for its format anyway; the size does not matter
    return ImageInfo(format=image_format, width=width, height=height, size_bytes=reader.size)


def check_image(info: ImageInfo, field: str) -> list[FieldIssue]:
    """Every rule-5 problem with a probed image, each phrased so the user knows what to change."""
    issues: list[FieldIssue] = []
    if info.format not in ACCEPTED_FORMATS:
        issues.append(
            FieldIssue(field, f"image is {info.format.upper()}; only JPG/JPEG or PNG images are accepted")
        )
    if info.size_bytes > MAX_IMAGE_BYTES:
        issues.append(
            FieldIssue(
                field,
                f"image is {info.size_bytes / _MIB:.1f} MB; the maximum is {MAX_IMAGE_BYTES // _MIB} MB",
            )
        )
    if info.format not in ACCEPTED_FORMATS:
        return issues  # its pixel size is moot
    if min(info.width, info.height) < MIN_SIDE_PX:
        issues.append(
            FieldIssue(
                field,
                f"image is {info.width}x{info.height} px; width and height must be at least {MIN_SIDE_PX} px",
            )
        )
    ratio = info.width / info.height
    if not (1 / MAX_ASPECT <= ratio <= MAX_ASPECT):
        shape = f"{ratio:.2f}:1" if ratio >= 1 else f"1:{1 / ratio:.2f}"
        issues.append(
            FieldIssue(
                field,
                f"image is {info.width}x{info.height} px (aspect ratio {shape}); "
                f"the aspect ratio must be between 1:{MAX_ASPECT:g} and {MAX_ASPECT:g}:1",
            )
        )
    return issues


class _HeaderTooLong(Exception):
    """The parser wanted more than MAX_HEADER_BYTES: refuse rather than read a whole object."""


class _ReaderFile:
    """The seek/read file interface `imagesize` expects, over a RangeReader, fetching whole blocks.

    imagesize reads a JPEG marker by marker (1-2 byte reads); caching 64 KiB blocks turns that into
    one ranged read per block touched, and the byte budget bounds what a hostile file can make us read.
    """

    def __init__(self, reader: RangeReader) -> None:
        self._reader = reader
        self._blocks: dict[int, bytes] = {}
        self._position = 0
        self._fetched = 0

    def peek(self, length: int) -> bytes:
        return self._read_at(0, length)

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self._reader.size - self._position
        data = self._read_at(self._position, size)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._reader.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def _read_at(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._reader.size)
        parts: list[bytes] = []
        while offset < end:
            index, within = divmod(offset, BLOCK_BYTES)
            block = self._block(index)
            piece = block[within : within + end - offset]
            if not piece:
                break
            parts.append(piece)
            offset += len(piece)
        return b"".join(parts)

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is None:
            if self._fetched + BLOCK_BYTES > MAX_HEADER_BYTES:
                raise _HeaderTooLong
            block = self._reader.read(index * BLOCK_BYTES, BLOCK_BYTES)
            self._fetched += len(block)
            self._blocks[index] = block
        return block
