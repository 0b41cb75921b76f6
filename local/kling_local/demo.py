"""`make demo`: the whole pipeline on this machine, against the provider simulator.

Starts the local stack, submits one generation per mode plus a multi-shot one, one whose callbacks the
provider drops (the fallback poller recovers it) and one the provider fails; drops an image and its
sidecar into the bucket's uploads/ (the S3 trigger turns it into a video) and has one generation's signed
webhook delivered to a receiver on 127.0.0.1. Shows their status live, then a table of results, checks the
webhook signature and copies the videos to ./out/. Exits 0 only if everything ended the way it should.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import struct
import sys
import threading
import time
import warnings
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx

from kling_local.stack.runner import LocalStack

# Inputs are probed before anything is spent, so they must exist: the simulator serves sample media, and the
# local stack admits http:// on loopback (LOCAL_ALLOW_HTTP_LOOPBACK). "{samples}" becomes its URL.
SAMPLES = "{samples}"
IMAGE = f"{SAMPLES}/samples/image.png?size=1280x720"
VIDEO = f"{SAMPLES}/samples/clip.mp4?duration=4"
TERMINAL = {"succeeded", "failed", "canceled"}
DEMO_ENV = {
    "LOCAL_API_KEYS": "demo-key=demo",
    "FALLBACK_FIRST_POLL_S": "3",
    "FALLBACK_MAX_INTERVAL_S": "3",
    "TASK_DEADLINE_S": "120",
    "SUBMIT_RETRY_BASE_S": "1",
    "SUBMIT_RETRY_MAX_S": "3",
    # The handlers' JSON logs and EMF metrics would bury the status board; warnings still show.
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
    # The demo's webhook receiver listens on plain http://127.0.0.1 (never allowed in a deployed stack).
    "LOCAL_ALLOW_PRIVATE_WEBHOOKS": "1",
    "UPLOAD_TENANTS": "uploads/=demo",
    "UPLOAD_SIDECAR_GRACE_S": "2",
}
UPLOAD_CASE = "s3 upload"
NEXT_STEP = """
Next: keep a stack running and use it from the CLI, the Python SDK or the playground page:
  .venv/bin/kling-pipeline local &      # then open http://127.0.0.1:8000/playground (key: local-dev-key)
  .venv/bin/kling-pipeline submit --mode text-to-video --prompt "A lighthouse at dawn" --wait --download out
"""


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    expect: str


CASES = [
    Case(
        "text-to-video",
        {"mode": "text-to-video", "prompt": "A lighthouse at dawn, waves rolling in"},
        "succeeded",
    ),
    Case(
        "image-to-video",
        {"mode": "image-to-video", "prompt": "The character slowly turns and smiles", "first_frame": IMAGE},
        "succeeded",
    ),
    Case(
        "reference-to-video",
        {
            "mode": "reference-to-video",
            "prompt": "A walk through a futuristic city in the style of @Image1",
            "reference_images": [IMAGE],
            "aspect_ratio": "9:16",
            "quality": "1080p",
        },
        "succeeded",
    ),
    Case(
        "video-edit", {"mode": "video-edit", "prompt": "Make it snow", "video": {"url": VIDEO}}, "succeeded"
    ),
    Case(
        "multi-shot",
        {
            "mode": "text-to-video",
            "shots": [
                {"prompt": "Wide shot of a harbour", "duration": 3},
                {"prompt": "Close-up of a gull", "duration": 2},
            ],
            "aspect_ratio": "1:1",
            "provider": "kling",
        },
        "succeeded",
    ),
    Case(
        "callback dropped",
        {"mode": "text-to-video", "prompt": "A quiet forest [sim:drop_callback]", "provider": "kling"},
        "succeeded",
    ),
    Case(
        "kling3api (polled)",
        {"mode": "text-to-video", "prompt": "A paper boat on a stream", "provider": "kling3api"},
        "succeeded",
    ),
    Case("provider fails", {"mode": "text-to-video", "prompt": "A doomed scene [sim:fail]"}, "failed"),
]


def main() -> int:
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    out_dir = Path("out")
    receiver = WebhookReceiver()
    print("Starting the local stack (moto, provider simulator, in-process Lambda handlers)…", flush=True)
    with receiver, LocalStack(env_overrides=DEMO_ENV) as stack:
        assert stack.simulator is not None
        stack.simulator.configure(generation_time_s=4.0)
        print(
            f"API {stack.api_url}   AWS (moto) {stack.aws_endpoint_url}   bucket {stack.bucket}\n", flush=True
        )
        with httpx.Client(base_url=stack.api_url, headers={"x-api-key": "demo-key"}, timeout=30) as api:
            ids = submit_all(api, receiver.url, stack.simulator.url)
            upload_id = upload_image(stack)
            if upload_id:
                ids[UPLOAD_CASE] = upload_id
            final = watch(api, ids)
            secret = api.get("/v1/webhooks/secret").json()["secret"]
        ok = report(final)
        ok = receiver.check(secret, final.get("text-to-video", {}).get("id")) and ok
        copy_outputs(stack, final, out_dir)
    print("\nDemo passed: everything ended as expected." if ok else "\nDemo FAILED.", flush=True)
    print(NEXT_STEP, end="", flush=True)
    return 0 if ok else 1


def submit_all(api: httpx.Client, webhook_url: str, samples_url: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    for case in CASES:
        body = json.loads(json.dumps(case.body).replace(SAMPLES, samples_url))
        if case.name == "text-to-video":
            body["webhook_url"] = webhook_url
        answer = api.post("/v1/generations", json=body)
        if answer.status_code != 202:
            print(f"  {case.name}: rejected {answer.status_code} {answer.text}", flush=True)
            continue
        ids[case.name] = answer.json()["id"]
        print(f"  submitted {case.name:<20} {ids[case.name]}", flush=True)
    return ids


def watch(api: httpx.Client, ids: dict[str, str], timeout_s: float = 180) -> dict[str, dict[str, Any]]:
    """Print a status line whenever anything moves, until all are terminal."""
    latest: dict[str, dict[str, Any]] = {}
    shown = ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, generation_id in ids.items():
            latest[name] = api.get(f"/v1/generations/{generation_id}").json()
        line = "  ".join(f"{name}: {describe(g)}" for name, g in latest.items())
        if line != shown:
            print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
            shown = line
        if all(g["status"] in TERMINAL for g in latest.values()):
            break
        time.sleep(1)
    return latest


def upload_image(stack: LocalStack) -> str | None:
    """Sidecar first, then the image: the S3 trigger makes an image-to-video generation of it."""
    s3 = stack.client("s3")
    bucket = str(stack.bucket)
    sidecar = {"prompt": "The lighthouse beam sweeps across the night sky", "duration": 3}
    s3.put_object(Bucket=bucket, Key="uploads/lighthouse.json", Body=json.dumps(sidecar).encode())
    s3.put_object(Bucket=bucket, Key="uploads/lighthouse.png", Body=png(640, 480), ContentType="image/png")
    print("  uploaded s3://…/uploads/lighthouse.png with its sidecar lighthouse.json", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            result = s3.get_object(Bucket=bucket, Key="uploads/lighthouse.png.generation.json")
        except s3.exceptions.NoSuchKey:
            time.sleep(0.5)
            continue
        generation_id = str(json.loads(result["Body"].read())["generation_id"])
        print(f"  submitted {UPLOAD_CASE:<20} {generation_id} (from uploads/lighthouse.png)", flush=True)
        return generation_id
    print("  the upload produced no generation", flush=True)
    return None


def png(width: int, height: int) -> bytes:
    """A plain RGB PNG: enough for the header checks (format, size, aspect ratio)."""
    rows = b"".join(b"\x00" + bytes((20, 60, 140)) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class WebhookReceiver:
    """A stand-in for the user's endpoint: records deliveries so the demo can verify their signatures."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks/video"

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def check(self, secret: str, generation_id: str | None) -> bool:
        """Verify the Standard Webhooks signature the way a receiver would."""
        deadline = time.monotonic() + 10
        while not self.received and time.monotonic() < deadline:
            time.sleep(0.2)
        if not self.received or generation_id is None:
            print("\nWebhook: nothing delivered", flush=True)
            return False
        headers, body = self.received[0]
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        valid = any(sig.split(",", 1)[1] == expected for sig in headers["webhook-signature"].split())
        event = json.loads(body)
        print(
            f"\nWebhook delivered to {self.url}: {event['type']} for {event['data']['id']}, "
            f"webhook-id {headers['webhook-id']}, signature {'valid' if valid else 'INVALID'}",
            flush=True,
        )
        return valid and event["data"]["id"] == generation_id


def describe(generation: dict[str, Any]) -> str:
    if generation["status"] in TERMINAL:
        return str(generation["status"])
    return f"{generation['status']} {generation.get('progress') or 0}%"


def money(cost: dict[str, Any] | None) -> str:
    """USD as the API writes it ("0.3750"), with the provider's own units after an actual cost."""
    if not cost:
        return "-"
    text = f"${cost['usd']}"
    if cost.get("unit") and cost.get("units") is not None:
        text += f" ({cost['units']} {cost['unit'].split('_')[-1]})"
    return text


def report(final: dict[str, dict[str, Any]]) -> bool:
    print("\nResults", flush=True)
    header = (
        f"{'case':<20} {'status':<10} {'provider':<10} {'est. USD':<10} {'actual USD (units)':<28} "
        f"{'bytes':>9}  {'sha256':<16}  s3 key"
    )
    print(header)
    print("-" * len(header))
    ok = len(final) == len(CASES) + 1
    for case in [*CASES, Case(UPLOAD_CASE, {}, "succeeded")]:
        g = final.get(case.name)
        if g is None:
            ok = False
            continue
        good = g["status"] == case.expect
        ok = ok and good
        estimated, actual = money(g.get("estimated_cost")), money(g.get("actual_cost"))
        output = (g.get("outputs") or [{}])[0]
        key = output.get("s3_uri", (g.get("error") or {}).get("code", "-"))
        print(
            f"{case.name:<20} {g['status']:<10} {g.get('provider') or '-':<10} {estimated:<10} {actual:<28} "
            f"{output.get('bytes', 0):>9}  {output.get('sha256', '-')[:16]:<16}  {key}"
            + ("" if good else f"   <-- expected {case.expect}")
        )
    return ok


def copy_outputs(stack: LocalStack, final: dict[str, dict[str, Any]], out_dir: Path) -> None:
    s3 = stack.client("s3")
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    for name, g in final.items():
        for index, output in enumerate(g.get("outputs") or []):
            target = out_dir / f"{name.replace(' ', '-')}-{index + 1}.mp4"
            s3.download_file(output["bucket"], output["key"], str(target))
    print(
        f"\nVideos copied to ./{out_dir}/: {', '.join(sorted(p.name for p in out_dir.iterdir()))}", flush=True
    )


if __name__ == "__main__":
    sys.exit(main())
