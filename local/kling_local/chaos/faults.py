"""An AWS fault proxy: sits between the handlers and the AWS endpoint and misbehaves on purpose.

Every request is classified by service (the SigV4 credential scope) and operation (`X-Amz-Target`, the
query protocol's `Action`, S3's method + sub-resource, Lambda's REST path). A seeded decision per call then
either forwards it untouched or injects one fault:

- `error500`: answered `500 InternalFailure` (S3: `InternalError`) without reaching AWS;
- `throttle`: answered the service's throttling error (`ThrottlingException`, DynamoDB's
  `ProvisionedThroughputExceededException`, S3's `503 SlowDown`) without reaching AWS;
- `timeout`: held for `timeout_s`, then the connection is closed unanswered; the request never arrives;
- `drop_after_apply`: forwarded and applied by AWS, then the connection is closed before the answer — the
  fault that turns a client retry into a second application of a non-idempotent call.

The decision for the n-th call of (service, operation) is `hash(seed, service, operation, n)`, so a run's
faults depend only on its seed and each operation's call order (not on how threads interleave across
operations). Counts of what was injected are kept for the accounting.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal

FaultKind = Literal["error500", "throttle", "timeout", "drop_after_apply"]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = ("error500", "throttle", "timeout", "drop_after_apply")

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_LAMBDA_INVOKE = re.compile(r"^/[\d-]+/functions/[^/]+/invocations")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"}
)
_JSON_THROTTLE = {"dynamodb": "ProvisionedThroughputExceededException"}


@dataclass
class FaultPlan:
    """Which share of calls misbehave, and how; `rates` overrides `rate` per "service" or "service.Op"."""

    seed: int = 0
    rate: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    kinds: dict[FaultKind, float] = field(
        default_factory=lambda: {"error500": 1.0, "throttle": 1.0, "timeout": 0.5, "drop_after_apply": 1.0}
    )
    timeout_s: float = 2.0

    def rate_for(self, service: str, operation: str) -> float:
        return self.rates.get(f"{service}.{operation}", self.rates.get(service, self.rate))

    def decide(self, service: str, operation: str, nth: int) -> FaultKind | None:
        """The fault (or None) for the `nth` call of `service.operation`, from the seed alone."""
        rate = self.rate_for(service, operation)
        if rate <= 0:
            return None
        digest = hashlib.sha256(f"{self.seed}|{service}|{operation}|{nth}".encode()).digest()
        roll = int.from_bytes(digest[:8], "big") / 2**64
        if roll >= rate:
            return None
        pick = int.from_bytes(digest[8:16], "big") / 2**64 * sum(self.kinds.values())
        for kind, weight in self.kinds.items():
            if pick < weight:
                return kind
            pick -= weight
        return None


def classify(method: str, path: str, headers: Any, body: bytes) -> tuple[str, str]:
    """(service, operation) of one AWS request, as well as the wire shows it."""
    match = _SCOPE.search(headers.get("Authorization", "") or "")
    service = match.group(1) if match else "unknown"
    target = headers.get("X-Amz-Target")
    if target:
        return service, target.rsplit(".", 1)[-1]
    parsed = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    if service == "s3":
        return service, _s3_operation(method, parsed.path, query, headers)
    if service == "lambda" and _LAMBDA_INVOKE.match(parsed.path):
        return service, "Invoke"
    if body and b"Action=" in body:
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        if action:
            return service, action
    if "Action" in query:
        return service, query["Action"][0]
    return service, f"{method} {parsed.path.split('/')[1] if '/' in parsed.path else ''}"


def _s3_operation(method: str, path: str, query: dict[str, list[str]], headers: Any) -> str:
    has_key = len([part for part in path.split("/") if part]) > 1
    if "uploads" in query:
        return "CreateMultipartUpload" if method == "POST" else "ListMultipartUploads"
    if "uploadId" in query:
        return {
            "PUT": "UploadPartCopy" if headers.get("x-amz-copy-source") else "UploadPart",
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
            "GET": "ListParts",
        }.get(method, method)
    if not has_key:
        return {"GET": "ListObjects", "PUT": "CreateBucket", "HEAD": "HeadBucket"}.get(
            method, f"{method}Bucket"
        )
    if method == "PUT" and headers.get("x-amz-copy-source"):
        return "CopyObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject"}.get(
        method, f"{method}Object"
    )


def _error_response(service: str, kind: FaultKind, headers: Any) -> tuple[int, dict[str, str], bytes]:
    """The wire answer of an injected error, in the protocol the client speaks."""
    throttled = kind == "throttle"
    if service == "s3":
        code, status = ("SlowDown", 503) if throttled else ("InternalError", 500)
        xml = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>injected</Message></Error>"
        return status, {"Content-Type": "application/xml"}, xml.encode()
    if headers.get("X-Amz-Target") or "json" in (headers.get("Content-Type") or ""):
        code = _JSON_THROTTLE.get(service, "ThrottlingException") if throttled else "InternalFailure"
        payload = json.dumps({"__type": code, "message": "injected fault"}).encode()
        return (
            (400 if throttled else 500),
            {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code},
            payload,
        )
    code = "Throttling" if throttled else "InternalFailure"
    xml = (
        "<ErrorResponse><Error><Type>Receiver</Type>"
        f"<Code>{code}</Code><Message>injected</Message></Error></ErrorResponse>"
    )
    return (400 if throttled else 500), {"Content-Type": "text/xml"}, xml.encode()


class FaultProxy:
    """The proxy on 127.0.0.1; `plan` may be changed while it runs (e.g. faults off for the accounting)."""

    def __init__(self, upstream: str, plan: FaultPlan, host: str = "127.0.0.1", port: int = 0) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.plan = plan
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._nth: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _any

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault proxy", daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _decide(self, service: str, operation: str) -> FaultKind | None:
        with self._lock:
            self._nth[(service, operation)] += 1
            nth = self._nth[(service, operation)]
            self.calls[f"{service}.{operation}"] += 1
            kind = self.plan.decide(service, operation, nth)
            if kind is not None:
                self.injected[f"{service}.{operation}:{kind}"] += 1
            return kind

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        service, operation = classify(request.command, request.path, request.headers, body)
        kind = self._decide(service, operation)
        if kind in ("error500", "throttle"):
            status, headers, payload = _error_response(service, kind, request.headers)
            self._answer(request, status, headers, payload)
            return
        if kind == "timeout":
            time.sleep(self.plan.timeout_s)
            self._drop(request)
            return
        try:
            status, headers, payload = self._forward(request, body)
        except OSError:
            self._drop(request)
            return
        if kind == "drop_after_apply":
            self._drop(request)
            return
        self._answer(request, status, headers, payload)

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=120)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(request.command, request.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            answer = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            answer.pop("Content-Length", None)
            answer.pop("content-length", None)
            if request.command == "HEAD":
                answer["Content-Length"] = response.getheader("Content-Length") or "0"
            return response.status, answer, payload
        finally:
            connection.close()

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: bytes
    ) -> None:
        request.send_response_only(status)
        for name, value in headers.items():
            request.send_header(name, value)
        if request.command != "HEAD":
            request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if request.command != "HEAD" and payload:
            request.wfile.write(payload)

    @staticmethod
    def _drop(request: BaseHTTPRequestHandler) -> None:
        """Close the client's connection without a byte of answer."""
        request.close_connection = True
        with contextlib.suppress(OSError):
            request.connection.shutdown(socket.SHUT_RDWR)

    def summary(self) -> dict[str, Any]:
        return {
            "calls": sum(self.calls.values()),
            "injected": sum(self.injected.values()),
            "by_kind": dict(Counter(key.rsplit(":", 1)[1] for key in self.injected.elements())),
            "by_operation": dict(sorted(self.injected.items())),
        }
