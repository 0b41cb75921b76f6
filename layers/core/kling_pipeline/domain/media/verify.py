"""Verify, while it streams, that a download is a complete MP4 — in bounded memory.

Ingest copies a provider's video to S3 chunk by chunk; a 24-hour link that serves an HTML error page,
a cut-short body or a file with junk appended must fail the ingest, not land in the user's bucket as
`video-1.mp4`. `Mp4StreamVerifier` walks the top-level boxes as bytes pass through, keeping only the
current box header, the small `ftyp` and the `moov` box (capped); `mdat` and `free`/`skip` padding,
however large, are counted and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from kling_pipeline.domain.media.isobmff import (
    HEADER_MAX,
    MAX_MOOV_BYTES,
    BoxError,
    BoxHeader,
    Movie,
    is_plausible_type,
    parse_box_header,
    parse_moov,
)
from kling_pipeline.errors import InvalidInput

_MAX_FTYP_BYTES = 4096


class NotAnMp4(InvalidInput):
    """The bytes are not one complete MP4: wrong start, broken or cut-short box chain, no moov/mdat."""

    def __init__(self, message: str) -> None:
        super().__init__(f"not a valid MP4: {message}")


@dataclass(frozen=True)
class Mp4Summary:
    duration_s: float
    width: int
    height: int
    brand: str
    fps: float | None
    codec: str | None
    size_bytes: int


class _OpenBox:
    """The top-level box being consumed: bytes still expected (None = to end of stream), and the
    payload buffer when we keep it (ftyp, moov)."""

    __slots__ = ("buffer", "header", "limit", "remaining", "start")

    def __init__(self, header: BoxHeader, start: int, limit: int | None) -> None:
        self.header = header
        self.start = start
        self.remaining = header.payload_size
        self.limit = limit
        self.buffer: bytearray | None = bytearray() if limit is not None else None


class Mp4StreamVerifier:
    """Feed the stream's chunks in order with `feed`, then call `finish` for the summary.

    Raises NotAnMp4 as soon as the stream cannot be an MP4 (so the caller can abort its upload early)
    and from `finish` when it ended early or lacks `moov`/`mdat`. Chunk boundaries do not matter.
    """

    def __init__(self, *, max_moov_bytes: int = MAX_MOOV_BYTES) -> None:
        self._max_moov_bytes = max_moov_bytes
        self._offset = 0
        self._header = bytearray()
        self._box: _OpenBox | None = None
        self._brand: str | None = None
        self._movie: Movie | None = None
        self._saw_mdat = False

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk).cast("B")
        while view:
            box = self._box
            view = self._take_header(view) if box is None else self._take_payload(box, view)

    def finish(self) -> Mp4Summary:
        if self._offset == 0:
            raise NotAnMp4("the stream is empty")
        if self._header:
            raise NotAnMp4(f"the stream ends inside a box header at byte {self._offset - len(self._header)}")
        box = self._box
        if box is not None:
            if box.remaining is not None:
                raise NotAnMp4(
                    f"the stream is truncated: box {box.header.type!r} at byte {box.start} "
                    f"is missing {box.remaining} bytes"
                )
            self._close(box)  # a size-0 box runs to the end of the stream: it is complete now
        if self._movie is None:
            raise NotAnMp4("there is no 'moov' box")
        if not self._saw_mdat:
            raise NotAnMp4("there is no 'mdat' box")
        video = self._movie.video
        if video is None:
            raise NotAnMp4("the movie has no video track")
        return Mp4Summary(
            duration_s=self._movie.duration_s,
            width=video.width,
            height=video.height,
            brand=self._brand or "",
            fps=video.fps,
            codec=video.codec,
            size_bytes=self._offset,
        )

    def _take_header(self, view: memoryview) -> memoryview:
        needed = 8 if len(self._header) < 8 else HEADER_MAX
        take = min(needed - len(self._header), len(view))
        self._header += view[:take]
        self._offset += take
        try:
            header = parse_box_header(self._header)
        except BoxError as exc:
            raise NotAnMp4(f"{exc} (at byte {self._offset - len(self._header)})") from None
        if header is not None:
            start = self._offset - len(self._header)
            self._header.clear()
            self._open(header, start)
        return view[take:]

    def _open(self, header: BoxHeader, start: int) -> None:
        if not is_plausible_type(header.type):
            raise NotAnMp4(f"bytes at offset {start} are not a box (type {header.type!r})")
        if start == 0 and header.type != "ftyp":
            raise NotAnMp4(f"the stream starts with {header.type!r}, not 'ftyp'")
        limit: int | None = None
        if header.type == "ftyp" and start == 0:
            limit = _MAX_FTYP_BYTES
        elif header.type == "moov":
            if self._movie is not None:
                raise NotAnMp4(f"a second 'moov' box at byte {start}")
            limit = self._max_moov_bytes
        elif header.type == "mdat":
            self._saw_mdat = True
        if limit is not None and header.payload_size is not None and header.payload_size > limit:
            raise NotAnMp4(f"the {header.type!r} box is {header.payload_size} bytes; the limit is {limit}")
        box = _OpenBox(header, start, limit)
        if box.remaining == 0:
            self._close(box)
        else:
            self._box = box

    def _take_payload(self, box: _OpenBox, view: memoryview) -> memoryview:
        take = len(view) if box.remaining is None else min(box.remaining, len(view))
        if box.buffer is not None and box.limit is not None:
            if len(box.buffer) + take > box.limit:
                raise NotAnMp4(f"the {box.header.type!r} box is larger than the {box.limit}-byte limit")
            box.buffer += view[:take]
        self._offset += take
        if box.remaining is not None:
            box.remaining -= take
            if box.remaining == 0:
                self._close(box)
        return view[take:]

    def _close(self, box: _OpenBox) -> None:
        self._box = None
        payload = bytes(box.buffer) if box.buffer is not None else b""
        if box.header.type == "ftyp" and box.start == 0:
            if len(payload) < 8:
                raise NotAnMp4("the 'ftyp' box is too short")
            self._brand = payload[:4].decode("latin-1")
        elif box.header.type == "moov":
            try:
                self._movie = parse_moov(payload)
            except BoxError as exc:
                raise NotAnMp4(f"the 'moov' box is corrupt: {exc}") from None
