"""S3-upload and EventBridge triggers end to end: moto's bucket notifications → UploadsQueue → the S3 trigger,
the stack's bus → the EventBridge trigger, the simulator as provider, and the terminal events on the bus.

The session's stack runs with the template's 30-second sidecar grace; these tests shorten it to 2 s and
map `uploads/` to the API tenant, so generations can be read back through the API.
"""

from __future__ import annotations

import json
import os
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from kling_local.stack.runner import LocalStack
from kling_pipeline.config import reset_settings
from tests.integration.waiting import wait_for

from .conftest import put_requested

pytestmark = pytest.mark.integration

GRACE_S = 2
TENANT = "tenant-a"  # KEY_A's tenant in conftest
DEFAULT_PROMPT = "Animate this image naturally"


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = (b"\x00" + b"\x80\x40\x20" * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def triggers_env(stack: LocalStack) -> Iterator[None]:
    """Short sidecar grace, and uploads/ and the default event source owned by the API tenant, for the
    in-process handlers."""
    changes = {
        "UPLOAD_SIDECAR_GRACE_S": str(GRACE_S),
        "UPLOAD_TENANTS": f"uploads/={TENANT}",
        "EVENT_SOURCE_TENANTS": f"kling-pipeline.requests={TENANT}",
    }
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    reset_settings()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_settings()


class Uploads:
    def __init__(self, stack: LocalStack, api: httpx.Client) -> None:
        self.stack = stack
        self.api = api
        self.s3 = stack.client("s3")
        self.bucket = str(stack.bucket)
        self.prefix = f"uploads/it-{uuid.uuid4().hex[:8]}/"

    def put(self, name: str, body: bytes | str) -> dict[str, Any]:
        data = body.encode() if isinstance(body, str) else body
        response = self.s3.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data)
        return {"key": self.prefix + name, "size": len(data), "etag": response["ETag"].strip('"')}

    def json_at(self, name: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)  # type: ignore[no-any-return]

    def wait_json(self, name: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for(lambda: self.json_at(name), timeout=timeout)  # type: ignore[no-any-return]

    def generations_from(self, name: str) -> list[dict[str, Any]]:
        """The tenant's generations created from uploads/<...>/<name> (by metadata.source_key)."""
        source = f"s3://{self.bucket}/{self.prefix}{name}"
        items = self.api.get("/v1/generations", params={"limit": 100}).json()["items"]
        return [item for item in items if item["metadata"].get("source_key") == source]

    def wait_terminal(self, generation_id: str, timeout: float = 60) -> dict[str, Any]:
        def terminal() -> dict[str, Any] | None:
            body: dict[str, Any] = self.api.get(f"/v1/generations/{generation_id}").json()
            return body if body["status"] in {"succeeded", "failed", "canceled"} else None

        return wait_for(terminal, timeout=timeout)  # type: ignore[no-any-return]

    def uploads_queue_drained(self) -> bool:
        queue = self.stack.resources.queues["UploadsQueue"]  # type: ignore[union-attr]
        attributes = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=queue.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            attributes["ApproximateNumberOfMessages"]
            == "0"
            == attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def resend_notification(self, put: dict[str, Any]) -> None:
        """The notification S3 (moto) sent for `put`, delivered to UploadsQueue once more."""
        body = {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": self.stack.region,
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "bucket": {"name": self.bucket, "arn": f"arn:aws:s3:::{self.bucket}"},
                        "object": {"key": put["key"], "size": put["size"], "eTag": put["etag"]},
                    },
                }
            ]
        }
        queue = self.stack.resources.queues["UploadsQueue"]  # type: ignore[union-attr]
        self.stack.client("sqs").send_message(QueueUrl=queue.url, MessageBody=json.dumps(body))


@pytest.fixture
def uploads(stack: LocalStack, sim: Any, api: httpx.Client, triggers_env: None) -> Uploads:
    return Uploads(stack, api)


# ---- S3 uploads -----------------------------------------------------------------------------------------


def test_sidecar_before_the_image_gives_one_succeeded_generation(uploads: Uploads) -> None:
    # Given a sidecar, then its 640x480 image
    uploads.put("cat.json", json.dumps({"prompt": "The cat slowly blinks", "duration": 3}))
    uploads.put("cat.png", png(640, 480))

    # Then one generation runs with the sidecar's spec and succeeds
    result = uploads.wait_json("cat.png.generation.json")
    generation = uploads.wait_terminal(result["generation_id"])
    assert generation["status"] == "succeeded", generation
    assert generation["mode"] == "image-to-video"
    assert generation["request"]["prompt"] == "The cat slowly blinks"
    assert generation["outputs"][0]["s3_uri"].startswith(f"s3://{uploads.bucket}/outputs/{TENANT}/")
    assert [g["id"] for g in uploads.generations_from("cat.png")] == [generation["id"]]


def test_sidecar_after_the_image_runs_once_and_the_grace_recheck_adds_nothing(uploads: Uploads) -> None:
    # Given an image without a spec, and its sidecar a moment later (inside the grace period)
    uploads.put("dog.png", png(640, 480))
    time.sleep(0.3)
    uploads.put("dog.json", json.dumps({"prompt": "The dog tilts its head", "duration": 3}))

    # Then the job runs with the sidecar ...
    result = uploads.wait_json("dog.png.generation.json")
    assert uploads.wait_terminal(result["generation_id"])["request"]["prompt"] == "The dog tilts its head"

    # ... and once the re-check has come and gone there is still exactly one generation
    time.sleep(GRACE_S + 1)
    wait_for(uploads.uploads_queue_drained, timeout=20)
    assert len(uploads.generations_from("dog.png")) == 1


def test_an_image_without_a_spec_runs_with_the_defaults_after_the_grace_period(uploads: Uploads) -> None:
    started = time.monotonic()
    uploads.put("plain.png", png(640, 480))

    result = uploads.wait_json("plain.png.generation.json")

    assert time.monotonic() - started >= GRACE_S - 0.5
    generation = uploads.wait_terminal(result["generation_id"])
    assert generation["request"]["prompt"] == DEFAULT_PROMPT
    assert generation["status"] == "succeeded"


def test_a_duplicate_notification_never_creates_a_second_generation(uploads: Uploads) -> None:
    # Given an image whose job ran
    uploads.put("twice.json", json.dumps({"prompt": "Only once", "duration": 3}))
    put = uploads.put("twice.png", png(640, 480))
    first = uploads.wait_json("twice.png.generation.json")

    # When the same S3 notification is delivered twice more
    uploads.resend_notification(put)
    uploads.resend_notification(put)
    time.sleep(1.5)
    wait_for(uploads.uploads_queue_drained, timeout=20)

    # Then there is still exactly one generation
    assert [g["id"] for g in uploads.generations_from("twice.png")] == [first["generation_id"]]
    assert uploads.json_at("twice.png.generation.json") == first


def test_a_jsonl_file_with_a_bad_line_creates_the_others(uploads: Uploads) -> None:
    lines = [
        {"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 3},
        {"mode": "text-to-video", "prompt": "Far too long", "duration": 42},
        {"mode": "text-to-video", "prompt": "Rain on a window", "duration": 3, "aspect_ratio": "9:16"},
    ]
    uploads.put("batch.jsonl", "\n".join(json.dumps(line) for line in lines))

    result = uploads.wait_json("batch.jsonl.generation.json")

    by_line = {item["line"]: item for item in result["generations"]}
    assert by_line[2]["error"]["code"] == "validation_error"
    assert by_line[2]["error"]["details"][0]["field"] == "duration"
    for line in (1, 3):
        assert uploads.wait_terminal(by_line[line]["generation_id"])["status"] == "succeeded"
    assert len(uploads.generations_from("batch.jsonl")) == 2


def test_a_too_small_image_gets_an_error_file_and_nothing_is_submitted(uploads: Uploads) -> None:
    uploads.put("tiny.json", json.dumps({"prompt": "Too small to animate"}))
    uploads.put("tiny.png", png(200, 200))

    error = uploads.wait_json("tiny.png.error.json")

    assert error["error"]["code"] == "validation_error"
    assert error["error"]["details"][0]["field"] == "first_frame"
    assert uploads.generations_from("tiny.png") == []
    assert uploads.json_at("tiny.png.generation.json") is None


# ---- EventBridge ----------------------------------------------------------------------------------------


def test_a_generation_requested_event_ends_in_a_generation_succeeded_event(
    stack: LocalStack,
    sim: Any,
    api: httpx.Client,
    triggers_env: None,
    bus_listener: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given a client putting a request on the stack's bus
    run = uuid.uuid4().hex
    put_requested(
        stack,
        {
            "tenant_id": TENANT,
            "mode": "text-to-video",
            "prompt": "Fireflies over a pond",
            "duration": 3,
            "metadata": {"run": run},
        },
    )

    # Then a Generation Succeeded for it is published, with the video in the bucket
    def succeeded() -> dict[str, Any] | None:
        return next(
            (
                e
                for e in bus_listener()
                if e["detail-type"] == "Generation Succeeded" and e["detail"]["metadata"].get("run") == run
            ),
            None,
        )

    event = wait_for(succeeded, timeout=60)
    detail = event["detail"]
    assert detail["tenant_id"] == TENANT
    assert detail["outputs"][0]["s3_uri"].startswith(f"s3://{stack.bucket}/outputs/{TENANT}/{detail['id']}/")
    assert api.get(f"/v1/generations/{detail['id']}").json()["status"] == "succeeded"


def test_an_invalid_generation_requested_event_is_answered_with_a_rejection(
    stack: LocalStack, sim: Any, triggers_env: None, bus_listener: Callable[[], list[dict[str, Any]]]
) -> None:
    run = uuid.uuid4().hex
    put_requested(
        stack, {"tenant_id": TENANT, "mode": "video-edit", "prompt": "No video", "metadata": {"run": run}}
    )

    def rejected() -> dict[str, Any] | None:
        return next(
            (
                e
                for e in bus_listener()
                if e["detail-type"] == "Generation Request Rejected"
                and (e["detail"]["metadata"] or {}).get("run") == run
            ),
            None,
        )

    detail = wait_for(rejected, timeout=30)["detail"]
    assert detail["error"]["code"] == "validation_error"
    assert "video" in {d["field"] for d in detail["error"]["details"]}
    assert detail["request_source"] == "kling-pipeline.requests"
