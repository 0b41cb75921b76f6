"""Records every provider request before it is handled (control routes under /_sim excepted).

A plain ASGI middleware that buffers the (small, JSON) request body and replays it to the app, so the
record holds the body even when a route refuses the request before reading it (401, injected 5xx), and
exists before the client sees the answer — a test may assert on it right after its call returns.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kling_local.simulator.recorder import Recorder

MAX_BODY = 16 * 1024 * 1024


class RecordingMiddleware:
    def __init__(self, app: ASGIApp, recorder: Recorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= MAX_BODY:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        entry = self.recorder.record_request(
            scope["method"], scope["path"], scope["query_string"].decode("latin-1"), headers, _decode(body)
        )
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.recorder.set_status(entry, int(message["status"]))
            await send(message)

        await self.app(scope, replay, send_and_note)


def _decode(body: bytes) -> Any:
    """JSON when it parses, else the text (truncated), None when empty."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body[:2048].decode("utf-8", errors="replace")
