"""The pipeline end to end through the local stack: real HTTP, moto, the state machine, the simulator."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import boto3
import httpx
import pytest
from boto3.dynamodb.conditions import Key

from kling_local.stack.runner import LocalStack, reset_process_caches
from kling_pipeline.config import get_settings
from kling_pipeline.providers.base import ProviderName
from kling_pipeline.providers.registry import get_providers
from kling_pipeline.services.tokens import callback_token
from tests.integration.waiting import wait_for
from tests.media_server import sample_media

from .conftest import wait_terminal

pytestmark = pytest.mark.integration

# Inputs are probed before anything is spent: real files, served on loopback (LOCAL_ALLOW_HTTP_LOOPBACK).
IMAGE = f"{sample_media().base}/image.png"
VIDEO = f"{sample_media().base}/clip.mp4?duration=4"

MODES: dict[str, dict[str, Any]] = {
    "text-to-video": {"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 3},
    "image-to-video": {
        "mode": "image-to-video",
        "prompt": "The character slowly turns and smiles",
        "first_frame": IMAGE,
        "duration": 3,
    },
    "reference-to-video": {
        "mode": "reference-to-video",
        "prompt": "Keep the style of <<<image_1>>>",
        "reference_images": [IMAGE],
        "aspect_ratio": "9:16",
        "duration": 3,
    },
    "video-edit": {"mode": "video-edit", "prompt": "Make it snow", "video": {"url": VIDEO}},
    "multi-shot": {
        "mode": "text-to-video",
        "shots": [{"prompt": "Scene one", "duration": 2}, {"prompt": "Scene two", "duration": 2}],
        "aspect_ratio": "1:1",
    },
}


def s3_client(stack: LocalStack) -> Any:
    return boto3.client("s3", endpoint_url=stack.aws_endpoint_url, region_name=stack.region)


def served_sha256(generation: dict[str, Any]) -> str:
    """Hash of the file the provider serves for this task, fetched independently of the pipeline."""
    task = get_providers()[ProviderName(generation["provider"])].query(generation["provider_task_id"])
    return hashlib.sha256(httpx.get(task.outputs[0].url, timeout=30).content).hexdigest()


def callback_receipts(stack: LocalStack, generation_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", endpoint_url=stack.aws_endpoint_url, region_name=stack.region).Table(
        get_settings().generations_table
    )
    found = table.query(
        KeyConditionExpression=Key("pk").eq(f"GEN#{generation_id}") & Key("sk").begins_with("CALLBACK#")
    )
    return list(found["Items"])


def object_versions(stack: LocalStack, prefix: str) -> list[dict[str, Any]]:
    listing = s3_client(stack).list_object_versions(Bucket=stack.bucket, Prefix=prefix)
    return list(listing.get("Versions", []))


@pytest.mark.parametrize("case", sorted(MODES))
@pytest.mark.parametrize("provider", ["kling", "evolink"])
def test_every_mode_succeeds_with_the_exact_bytes_served(
    stack: LocalStack, sim: Any, api: httpx.Client, case: str, provider: str
) -> None:
    # Given a healthy provider
    # When a generation of each mode is requested
    created = api.post("/v1/generations", json={**MODES[case], "provider": provider})
    assert created.status_code == 202, created.text
    # (queued when another worker's refill is starting it at that moment: admission control)
    assert created.json()["status"] in {"queued", "submitted", "processing"}

    # Then it succeeds with one stored MP4 whose bytes are exactly the provider's
    done = wait_terminal(api, created.json()["id"])
    assert done["status"] == "succeeded", done
    [output] = done["outputs"]
    stored = s3_client(stack).get_object(Bucket=stack.bucket, Key=output["s3_uri"].split("/", 3)[3])
    body = stored["Body"].read()
    assert stored["ContentType"] == "video/mp4"
    assert body[4:8] == b"ftyp"
    assert hashlib.sha256(body).hexdigest() == output["sha256"] == served_sha256(done)
    assert output["bytes"] == len(body)
    assert httpx.get(output["url"]).content == body  # the presigned link serves it too


def test_kling3api_has_no_callbacks_and_is_completed_by_the_fallback(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    created = api.post("/v1/generations", json={**MODES["text-to-video"], "provider": "kling3api"})
    assert created.status_code == 202, created.text
    done = wait_terminal(api, created.json()["id"])
    assert done["status"] == "succeeded"
    assert done["outputs"][0]["sha256"] == served_sha256(done)


def test_all_callbacks_dropped_every_generation_is_recovered_by_polling(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    sim.config = sim.config.model_copy(update={"callback_drop_rate": 1.0})
    ids = [
        api.post("/v1/generations", json={**MODES["text-to-video"], "provider": provider}).json()["id"]
        for provider in ("kling", "evolink", "kling", "evolink")
    ]
    results = [wait_terminal(api, generation_id) for generation_id in ids]
    assert [result["status"] for result in results] == ["succeeded"] * 4
    assert all(callback_receipts(stack, generation_id) == [] for generation_id in ids)


def test_duplicate_and_out_of_order_callbacks_leave_one_state_and_one_object(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    sim.config = sim.config.model_copy(update={"callback_duplicate_rate": 1.0, "callback_out_of_order": True})
    generation_id = api.post("/v1/generations", json={**MODES["text-to-video"], "provider": "kling"}).json()[
        "id"
    ]
    done = wait_terminal(api, generation_id)
    assert done["status"] == "succeeded"
    # Let the stale and duplicate callbacks arrive and be processed.
    wait_for(lambda: len(callback_receipts(stack, generation_id)) >= 3)
    after = api.get(f"/v1/generations/{generation_id}").json()
    assert after["status"] == "succeeded"
    assert after["outputs"][0]["sha256"] == done["outputs"][0]["sha256"]
    assert len(callback_receipts(stack, generation_id)) >= 3
    assert len(object_versions(stack, f"outputs/tenant-a/{generation_id}/")) == 1


def test_callbacks_with_a_wrong_or_missing_token_are_rejected_and_change_nothing(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    generation_id = api.post(
        "/v1/generations",
        json={
            **MODES["text-to-video"],
            "prompt": "Hold still [sim:never] [sim:drop_callback]",
            "provider": "kling",
        },
    ).json()["id"]
    before = api.get(f"/v1/generations/{generation_id}").json()
    path = f"{stack.api_url}/v1/callbacks/kling/{generation_id}"
    claim = {"task_id": before["provider_task_id"], "task_status": "succeed"}
    wrong = (callback_token("gen_someone_else", "kling"), callback_token(generation_id, "evolink"))
    for params in ({}, {"token": "forged"}, *({"token": token} for token in wrong)):
        answer = httpx.post(path, params=params, json=claim)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
    assert callback_receipts(stack, generation_id) == []
    after = api.get(f"/v1/generations/{generation_id}").json()
    assert after["status"] == before["status"] and after["outputs"] == []
    api.post(f"/v1/generations/{generation_id}/cancel")


def test_a_lying_callback_makes_the_pipeline_ask_the_provider_and_download_nothing_else(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    # Given a server that would serve an attacker's video, and a task still running at the provider
    fetched: list[str] = []

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"not your video")

        def log_message(self, *args: Any) -> None:
            pass

    evil = HTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    generation_id = api.post(
        "/v1/generations",
        json={
            **MODES["text-to-video"],
            "prompt": "Slow [sim:never] [sim:drop_callback]",
            "provider": "kling",
        },
    ).json()["id"]
    task_id = api.get(f"/v1/generations/{generation_id}").json()["provider_task_id"]

    # When a correctly signed callback claims success with another URL
    lie = {
        "task_id": task_id,
        "task_status": "succeed",
        "task_result": {"videos": [{"id": "1", "url": f"http://127.0.0.1:{evil.server_port}/evil.mp4"}]},
    }
    answer = httpx.post(
        f"{stack.api_url}/v1/callbacks/kling/{generation_id}",
        params={"token": callback_token(generation_id, "kling")},
        json=lie,
    )
    assert answer.status_code == 200

    # Then the receipt is processed, the provider is asked, and nothing is downloaded or stored
    wait_for(lambda: len(callback_receipts(stack, generation_id)) == 1)
    queries = lambda: [r for r in sim.requests() if r["method"] == "GET" and task_id in r["path"]]  # noqa: E731
    wait_for(queries)
    current = api.get(f"/v1/generations/{generation_id}").json()
    assert current["status"] in {"submitted", "processing"}
    assert current["outputs"] == []
    assert fetched == []
    assert object_versions(stack, f"outputs/tenant-a/{generation_id}/") == []
    evil.shutdown()
    api.post(f"/v1/generations/{generation_id}/cancel")


def test_a_lost_submit_answer_creates_exactly_one_task_at_the_provider(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    sim.config = sim.config.model_copy(update={"create_lost_response_count": 1})
    created = api.post(
        "/v1/generations", json={**MODES["text-to-video"], "prompt": "Once only", "provider": "kling"}
    )
    assert created.status_code == 202
    generation_id = created.json()["id"]
    done = wait_terminal(api, generation_id)
    assert done["status"] == "succeeded"
    creates = [
        r
        for r in sim.requests()
        if r["method"] == "POST"
        and r["path"].startswith("/v1/videos/")
        and (r.get("json") or {}).get("external_task_id") == generation_id
    ]
    assert len(creates) == 1
    tasks = [t for t in sim.tasks() if t.get("external_task_id") == generation_id]
    assert len(tasks) == 1


def test_a_burst_beyond_provider_concurrency_is_queued_never_failed(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    # Given a provider account that runs at most 3 tasks at a time
    sim.config = sim.config.model_copy(update={"concurrency_limit": 3, "generation_time_s": 1.0})
    sim.reset_stats()
    # When 20 generations arrive at once
    ids = [
        api.post(
            "/v1/generations", json={**MODES["text-to-video"], "prompt": f"Burst {n}", "provider": "kling"}
        ).json()["id"]
        for n in range(20)
    ]
    # Then all succeed, and the provider never had more than 3 in flight
    results = [wait_terminal(api, generation_id, timeout=150) for generation_id in ids]
    assert [result["status"] for result in results] == ["succeeded"] * 20
    assert sim.stats()["max_in_flight"]["kling"] <= 3


def test_a_task_that_never_finishes_fails_with_timeout_at_the_deadline(
    stack: LocalStack, sim: Any, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASK_DEADLINE_S", "6")
    reset_process_caches()
    try:
        generation_id = api.post(
            "/v1/generations",
            json={**MODES["text-to-video"], "prompt": "Forever [sim:never]", "provider": "evolink"},
        ).json()["id"]
    finally:
        monkeypatch.setenv("TASK_DEADLINE_S", "90")
        reset_process_caches()
    done = wait_terminal(api, generation_id, timeout=40)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "timeout"


def test_the_provider_failing_a_task_fails_the_generation_with_its_message(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    generation_id = api.post(
        "/v1/generations", json={**MODES["text-to-video"], "prompt": "Doomed [sim:fail]", "provider": "kling"}
    ).json()["id"]
    done = wait_terminal(api, generation_id)
    assert done["status"] == "failed"
    assert done["error"]["message"]
    assert done["outputs"] == []


def test_tenants_see_only_their_own_generations(
    stack: LocalStack, sim: Any, api: httpx.Client, api_b: httpx.Client
) -> None:
    generation_id = api.post("/v1/generations", json={**MODES["text-to-video"], "provider": "kling"}).json()[
        "id"
    ]
    assert api_b.get(f"/v1/generations/{generation_id}").status_code == 404
    assert api_b.post(f"/v1/generations/{generation_id}/cancel").status_code == 404
    assert generation_id not in [item["id"] for item in api_b.get("/v1/generations").json()["items"]]
    assert generation_id in [item["id"] for item in api.get("/v1/generations?limit=100").json()["items"]]
    assert httpx.get(f"{stack.api_url}/v1/generations/{generation_id}").status_code == 403  # no API key
    wait_terminal(api, generation_id)
