"""`GET /files/{token}/video.mp4`: signed, expiring, streamed, optionally padded or cut mid-stream.

Ingest must be proven to stream in constant memory, resume or retry a broken transfer, and give up on an
expired link, so downloads behave like a CDN: 403 once the link expires (or when it was forged), single
byte ranges (206), and two knobs. `output_pad_to_bytes` (baked into the link when the task finished)
appends one top-level MP4 `free` box — players skip it, the file stays valid — generated on the fly so a
200 MiB output never exists in memory or on disk. `download_fail_after_bytes` cuts the connection after
that many body bytes of a response (for `download_fail_count` downloads, or all while set).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from kling_local.mp4gen import make_mp4
from kling_local.simulator.context import sim
from kling_local.simulator.links import LinkExpiredError, LinkInvalidError

# 1 MiB per write: a CDN's serving costs the downloader no CPU, while this process shares the machine
# with it (256 KiB writes doubled the simulator's CPU per byte: one thread hop and one h11 frame each).
CHUNK = 1024 * 1024
_ZEROS = bytes(CHUNK)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_SMALL_BOX = 0xFFFFFFFF


class SimulatedDisconnectError(Exception):
    """Raised inside a download body to make the server drop the connection (the mid-stream fault)."""


@dataclass(frozen=True)
class Layout:
    """The served bytes: the MP4 file, then an optional `free` box header, then zeros to `total`."""

    path: Path
    file_size: int
    free_header: bytes
    total: int

    @classmethod
    def build(cls, path: Path, pad_to: int | None) -> Layout:
        size = path.stat().st_size
        pad = (pad_to or 0) - size
        if pad < 8:  # a box needs at least its 8-byte header
            return cls(path, size, b"", size)
        if pad <= _MAX_SMALL_BOX:
            header = struct.pack(">I4s", pad, b"free")
        else:  # 64-bit "largesize" box
            header = struct.pack(">I4sQ", 1, b"free", pad)
        return cls(path, size, header, size + pad)

    def iter_bytes(self, start: int, end: int, cut_after: int | None) -> Iterator[bytes]:
        """Bytes [start, end) in chunks; raises SimulatedDisconnectError after `cut_after` bytes."""
        sent = 0
        position = start
        if cut_after is not None and cut_after >= end - start:
            cut_after = None  # the cut would come after the last byte: nothing to cut
        with self.path.open("rb") as handle:
            while position < end:
                chunk = self._chunk(handle, position, min(CHUNK, end - position))
                if cut_after is not None and sent + len(chunk) > cut_after:
                    if cut_after > sent:
                        yield chunk[: cut_after - sent]
                    raise SimulatedDisconnectError(f"simulated connection cut after {cut_after} bytes")
                yield chunk
                sent += len(chunk)
                position += len(chunk)

    def _chunk(self, handle: BinaryIO, position: int, size: int) -> bytes:
        if position < self.file_size:
            handle.seek(position)
            return handle.read(min(size, self.file_size - position))
        offset = position - self.file_size
        if offset < len(self.free_header):
            return self.free_header[offset : offset + size]
        return _ZEROS[:size]


def parse_range(header: str | None, total: int) -> tuple[int, int] | str | None:
    """[start, end) of a single `bytes=` range; None for the whole body; "unsatisfiable" for 416."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # multi-range or junk: RFC 9110 lets us ignore it and send everything
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last) + 1, total) if last else total
    elif last:
        start, end = max(0, total - int(last)), total
    else:
        return None
    if start >= total or start >= end:
        return "unsatisfiable"
    return start, end


async def download(request: Request) -> Response:
    context = sim(request)
    try:
        claims = context.signer.verify(str(request.path_params["token"]))
    except LinkExpiredError:
        return PlainTextResponse("AccessDenied: Request has expired", status_code=403)
    except LinkInvalidError:
        return PlainTextResponse("AccessDenied: invalid signature", status_code=403)
    spec = claims.spec
    path = await anyio.to_thread.run_sync(
        lambda: make_mp4(spec.width, spec.height, spec.duration_s, sound=spec.sound)
    )
    layout = Layout.build(path, claims.pad_to)
    headers = {"accept-ranges": "bytes", "cache-control": "private, max-age=86400"}
    span = parse_range(request.headers.get("range"), layout.total)
    if span == "unsatisfiable":
        return Response(status_code=416, headers={"content-range": f"bytes */{layout.total}"})
    status = 200
    start, end = 0, layout.total
    if isinstance(span, tuple):
        start, end = span
        status = 206
        headers["content-range"] = f"bytes {start}-{end - 1}/{layout.total}"
    headers["content-length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="video/mp4")
    cut = context.engine.take_download_cut()
    return StreamingResponse(
        layout.iter_bytes(start, end, cut), status_code=status, headers=headers, media_type="video/mp4"
    )


ROUTES = [Route("/files/{token}/video.mp4", download, methods=["GET", "HEAD"])]
