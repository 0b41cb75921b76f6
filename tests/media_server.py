"""A CDN stand-in on loopback: serves media with Range support, records what was asked and sent.

Inputs are probed by ranged GETs before anything is spent, so tests that submit `https://` inputs need a
server that really has the files; the local stack admits `http://127.0.0.1` (LOCAL_ALLOW_HTTP_LOOPBACK).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kling_local.mp4gen import make_mp4
from kling_local.samples import png

Content = bytes | Callable[[], bytes]


class MediaServer:
    """Serves `files` (path → bytes, or a function making them on first use) on 127.0.0.1."""

    def __init__(self, files: Mapping[str, Content], *, ranges: bool = True, stall_s: float = 0.0) -> None:
        self.files = dict(files)
        self.requests: list[str | None] = []
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.requests.append(self.headers.get("range"))
                if stall_s:
                    time.sleep(stall_s)
                data = server.content(self.path.split("?")[0])
                if data is None:
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                spec = self.headers.get("range")
                if ranges and spec and spec.startswith("bytes="):
                    first, _, last = spec[6:].partition("-")
                    start, end = int(first), min(int(last) + 1, len(data))
                    body = data[start:end]
                    self.send_response(206)
                    self.send_header("content-range", f"bytes {start}-{end - 1}/{len(data)}")
                else:
                    body = data
                    self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                server.sent += len(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def content(self, path: str) -> bytes | None:
        item = self.files.get(path)
        if callable(item):
            item = self.files[path] = item()
        return item

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@cache
def sample_media() -> MediaServer:
    """One process-wide server of valid inputs: `/image.png` (1280x720) and `/clip.mp4` (4 s, 1280x720)."""
    return MediaServer(
        {
            "/image.png": lambda: png(1280, 720),
            "/clip.mp4": lambda: make_mp4(1280, 720, 4.0).read_bytes(),
        }
    )
