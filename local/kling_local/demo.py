"""`make demo`: the whole pipeline on this machine, against the provider simulator.

Starts the local stack, submits one generation per mode plus a multi-shot one, one whose callbacks the
provider drops (the fallback poller recovers it) and one the provider fails; shows their status live,
then prints a table of results and copies the videos to ./out/. Exits 0 only if every generation ended
the way it should.
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from kling_local.stack.runner import LocalStack

IMAGE = "https://cdn.example.com/demo/portrait.png"
VIDEO = "https://cdn.example.com/demo/clip.mp4?duration=4"
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
}


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
    Case("provider fails", {"mode": "text-to-video", "prompt": "A doomed scene [sim:fail]"}, "failed"),
]


def main() -> int:
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    out_dir = Path("out")
    print("Starting the local stack (moto, provider simulator, in-process Lambda handlers)…", flush=True)
    with LocalStack(
        api_port=0, aws_port=0, simulator=True, simulator_port=0, env_overrides=DEMO_ENV
    ) as stack:
        if stack.simulator is not None:
            stack.simulator.config = stack.simulator.config.model_copy(update={"generation_time_s": 4.0})
        print(
            f"API {stack.api_url}   AWS (moto) {stack.aws_endpoint_url}   bucket {stack.bucket}\n", flush=True
        )
        with httpx.Client(base_url=stack.api_url, headers={"x-api-key": "demo-key"}, timeout=30) as api:
            ids = submit_all(api)
            final = watch(api, ids)
        ok = report(final)
        copy_outputs(stack, final, out_dir)
    print("\nDemo passed: every generation ended as expected." if ok else "\nDemo FAILED.", flush=True)
    return 0 if ok else 1


def submit_all(api: httpx.Client) -> dict[str, str]:
    ids: dict[str, str] = {}
    for case in CASES:
        answer = api.post("/v1/generations", json=case.body)
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


def describe(generation: dict[str, Any]) -> str:
    if generation["status"] in TERMINAL:
        return str(generation["status"])
    return f"{generation['status']} {generation.get('progress') or 0}%"


def money(cost: dict[str, Any] | None) -> str:
    if not cost:
        return "-"
    if cost.get("usd"):
        return f"${float(cost['usd']):.3f}"
    return f"{cost['credits']} cr" if cost.get("credits") else "-"


def report(final: dict[str, dict[str, Any]]) -> bool:
    print("\nResults", flush=True)
    header = (
        f"{'case':<20} {'status':<10} {'provider':<10} {'cost est. / actual':<22} {'bytes':>9}  "
        f"{'sha256':<16}  s3 key"
    )
    print(header)
    print("-" * len(header))
    ok = len(final) == len(CASES)
    for case in CASES:
        g = final.get(case.name)
        if g is None:
            ok = False
            continue
        good = g["status"] == case.expect
        ok = ok and good
        price = f"{money(g.get('estimated_cost'))} / {money(g.get('actual_cost'))}"
        output = (g.get("outputs") or [{}])[0]
        key = output.get("s3_uri", (g.get("error") or {}).get("code", "-"))
        print(
            f"{case.name:<20} {g['status']:<10} {g.get('provider') or '-':<10} {price:<22} "
            f"{output.get('bytes', 0):>9}  {output.get('sha256', '-')[:16]:<16}  {key}"
            + ("" if good else f"   <-- expected {case.expect}")
        )
    return ok


def copy_outputs(stack: LocalStack, final: dict[str, dict[str, Any]], out_dir: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url, region_name=stack.region)
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
