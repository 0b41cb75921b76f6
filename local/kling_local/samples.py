"""Sample input media a developer (or a test) can hand the local stack as `http://127.0.0.1/...` inputs.

The pipeline probes `https://` inputs (and, locally, `http://` on loopback) before it spends anything, so
the local stack needs real files to point at: the simulator serves them under `/samples/` with range
support, as a CDN would. `image.png?size=1280x720` is a PNG of that size; `clip.mp4?duration=4` is a real
H.264 MP4 (1280x720, 24 fps) whose length is also the simulator's hint for a video edit's output length.
"""

from __future__ import annotations

import struct
import zlib

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from kling_local.mp4gen import make_mp4

DEFAULT_IMAGE_SIZE = (1280, 720)


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG (black) of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = (b"\x00" + b"\x00" * width * 3) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _size(request: Request) -> tuple[int, int]:
    width, _, height = request.query_params.get("size", "").partition("x")
    if width.isdigit() and height.isdigit() and 0 < int(width) <= 4096 and 0 < int(height) <= 4096:
        return int(width), int(height)
    return DEFAULT_IMAGE_SIZE


def _ranged(request: Request, data: bytes, media_type: str) -> Response:
    """`data` answered like a CDN: 206 for a `Range: bytes=a-b` request, else 200."""
    total = len(data)
    headers = {"accept-ranges": "bytes"}
    spec = request.headers.get("range", "")
    if spec.startswith("bytes="):
        first, _, last = spec.removeprefix("bytes=").partition("-")
        start = int(first) if first.isdigit() else 0
        end = min(int(last) + 1 if last.isdigit() else total, total)
        if start >= total or start >= end:
            return Response(status_code=416, headers={"content-range": f"bytes */{total}"})
        headers["content-range"] = f"bytes {start}-{end - 1}/{total}"
        return Response(data[start:end], status_code=206, headers=headers, media_type=media_type)
    return Response(data, headers=headers, media_type=media_type)


async def image(request: Request) -> Response:
    width, height = _size(request)
    return _ranged(request, await anyio.to_thread.run_sync(png, width, height), "image/png")


async def clip(request: Request) -> Response:
    try:
        duration = float(request.query_params.get("duration", "5"))
    except ValueError:
        return PlainTextResponse("duration must be a number", status_code=400)
    width, height = _size(request)
    path = await anyio.to_thread.run_sync(lambda: make_mp4(width, height, duration))
    return _ranged(request, path.read_bytes(), "video/mp4")


ROUTES = [
    Route("/samples/image.png", image, methods=["GET", "HEAD"]),
    Route("/samples/clip.mp4", clip, methods=["GET", "HEAD"]),
]
