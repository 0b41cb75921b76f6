"""S3 upload triggers (services.uploads, functions/s3_trigger) against moto, without a provider.

`create_generation` is replaced by a stand-in that runs the real validation (`validated_request`: the
request rules and the header checks of s3:// media, through ranged reads of the moto object) and writes the
generation, but submits nothing: whatever reaches a provider is covered by
tests/integration/pipeline/test_triggers.py. The table, bucket and queue come from template.yaml.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

from kling_local.samples import png
from kling_local.stack.template import DYNAMODB_TABLE, Template
from kling_pipeline.caches import reset_caches
from kling_pipeline.config import reset_settings
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.services import triggers, uploads
from kling_pipeline.store.generations import get_generation_store
from tests.unit.conftest import FakeCreate

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "kling-pipeline-media-123456789012-us-east-1"
REGION = "us-east-1"
Event = Callable[[str], dict[str, Any]]


# ---- fixtures -------------------------------------------------------------------------------------------


@cache
def template() -> Template:
    return Template.load(ROOT / "template.yaml")


def create_template_table(logical_id: str, name: str) -> None:
    """A table exactly as template.yaml declares its keys and indexes."""
    resource = template().resources[logical_id]
    assert resource.type == DYNAMODB_TABLE
    props = resource.properties
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    boto3.client("dynamodb", region_name=REGION).create_table(**request)


class Env:
    """Handles on the mocked stack: bucket, uploads queue, the stand-in and helpers to drive the trigger."""

    def __init__(self, create: FakeCreate, queue_url: str) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.create = create
        self.queue_url = queue_url

    def put(self, key: str, body: bytes | str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        data = body.encode() if isinstance(body, str) else body
        response = self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, Metadata=metadata or {})
        return {
            "key": key,
            "size": len(data),
            "etag": response["ETag"].strip('"'),
            "version": response.get("VersionId"),
        }

    def notification(self, put: dict[str, Any], template: dict[str, Any]) -> str:
        """The S3 notification body of `put`, shaped like the sample event's."""
        body = json.loads(template["Records"][0]["body"])
        obj = body["Records"][0]["s3"]["object"]
        obj.update(key=quote_plus(put["key"]), size=put["size"], eTag=put["etag"], versionId=put["version"])
        body["Records"][0]["s3"]["bucket"]["name"] = BUCKET
        return json.dumps(body)

    def json_at(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())  # type: ignore[no-any-return]
        except self.s3.exceptions.NoSuchKey:
            return None

    def generations(self, tenant: str = "uploads") -> list[Generation]:
        return get_generation_store().list_for_tenant(tenant, status=None, limit=100, cursor=None).items

    def rechecks(self, wait_s: int = 3) -> list[str]:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
        ).get("Messages", [])
        for message in messages:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [message["Body"] for message in messages]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "BUCKET_NAME": BUCKET,
        "GENERATIONS_TABLE": "generations",
        "UPLOAD_TENANT_ID": "uploads",
        "UPLOAD_SIDECAR_GRACE_S": "1",
        "DEFAULT_QUALITY": "1080p",
        "DEFAULT_DURATION_S": "7",
        "DEFAULT_PROMPT": "Animate this image naturally",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("UPLOAD_TENANTS", raising=False)
    with mock_aws():
        create_template_table("GenerationsTable", "generations")
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        queue_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="uploads")["QueueUrl"]
        monkeypatch.setenv("UPLOADS_QUEUE_URL", queue_url)
        reset_caches()
        fake = FakeCreate()
        monkeypatch.setattr(uploads, "create_generation", fake)
        yield Env(fake, queue_url)
    reset_caches()


@pytest.fixture
def deliver(lambda_context: Any, event: Event) -> Callable[..., dict[str, Any]]:
    """Hand message bodies to the S3 trigger as one SQS batch; returns its partial-failure response."""
    from functions.s3_trigger.app import lambda_handler

    def run(*bodies: str) -> dict[str, Any]:
        sample = event("s3_trigger/image_uploaded")
        record = sample["Records"][0]
        sample["Records"] = [
            {**record, "messageId": f"msg-{index}", "body": body} for index, body in enumerate(bodies)
        ]
        return dict(lambda_handler(sample, lambda_context))

    return run


@pytest.fixture
def image_sample(event: Event) -> dict[str, Any]:
    return event("s3_trigger/image_uploaded")


# ---- media and sidecars ---------------------------------------------------------------------------------


def test_sidecar_uploaded_before_the_image_gives_one_generation_with_its_spec(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    # Given a sidecar whose media is not there yet
    sidecar = env.put("uploads/cat.json", json.dumps({"prompt": "The cat yawns", "duration": 4}))
    assert deliver(env.notification(sidecar, image_sample)) == {"batchItemFailures": []}
    assert env.create.calls == []

    # When the image arrives
    image = env.put("uploads/cat.png", png(640, 480))
    assert deliver(env.notification(image, image_sample)) == {"batchItemFailures": []}

    # Then one image-to-video generation runs with the sidecar's spec and the stack's defaults
    [call] = env.create.calls
    assert call["body"]["mode"] == "image-to-video"
    assert call["body"]["first_frame"] == f"s3://{BUCKET}/uploads/cat.png"
    assert (call["body"]["prompt"], call["body"]["duration"], call["body"]["quality"]) == (
        "The cat yawns",
        4,
        "1080p",
    )
    assert call["source"] == f"s3://{BUCKET}/uploads/cat.png"
    [generation] = env.generations()
    assert generation.metadata["source_key"] == f"s3://{BUCKET}/uploads/cat.png"
    assert generation.metadata["source_version"] == image["version"]
    assert env.json_at("uploads/cat.png.generation.json") == {
        "source": f"s3://{BUCKET}/uploads/cat.png",
        "version_id": image["version"],
        "etag": image["etag"],
        "generation_id": generation.id,
    }
    assert env.rechecks(wait_s=0) == []


def test_sidecar_uploaded_after_the_image_runs_the_job_and_the_recheck_adds_nothing(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    # Given an image without a spec: it waits for its sidecar
    image = env.put("uploads/dog.png", png(640, 480))
    deliver(env.notification(image, image_sample))
    assert env.create.calls == []

    # When the sidecar arrives within the grace period
    sidecar = env.put("uploads/dog.json", json.dumps({"prompt": "The dog wags its tail"}))
    deliver(env.notification(sidecar, image_sample))

    # Then the job runs with the sidecar ...
    [call] = env.create.calls
    assert call["body"]["prompt"] == "The dog wags its tail"

    # ... and the grace re-check, delivered later, creates nothing more
    [recheck] = env.rechecks()
    assert json.loads(recheck)["kind"] == "upload-recheck"
    assert deliver(recheck) == {"batchItemFailures": []}
    assert len(env.create.calls) == 1
    assert len(env.generations()) == 1


def test_object_metadata_is_a_job_spec_and_runs_without_waiting(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    # Given an image carrying its spec as x-amz-meta-* (non-ASCII as RFC 2047, as SDKs send it)
    image = env.put(
        "uploads/meta.png",
        png(640, 480),
        metadata={"prompt": "=?UTF-8?B?TGUgY2hhdCBzb3VyaXQg4pi6?=", "duration": "6", "aspect-ratio": "1:1"},
    )

    # When it arrives
    deliver(env.notification(image, image_sample))

    # Then the job runs at once with the metadata spec
    [call] = env.create.calls
    assert call["body"]["prompt"] == "Le chat sourit ☺"
    assert (call["body"]["duration"], call["body"]["aspect_ratio"]) == ("6", "1:1")
    assert env.generations()[0].request.duration == 6
    assert env.rechecks(wait_s=0) == []


def test_media_without_a_spec_runs_with_the_stack_defaults_after_the_grace_period(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    # Given an image with neither sidecar nor metadata
    image = env.put("uploads/plain.png", png(640, 480))
    deliver(env.notification(image, image_sample))
    assert env.create.calls == []

    # When no sidecar arrives and the delayed re-check comes back
    started = time.monotonic()
    [recheck] = env.rechecks()
    assert time.monotonic() - started >= 0.5  # sent with a delay (UPLOAD_SIDECAR_GRACE_S=1)
    deliver(recheck)

    # Then the job runs with DEFAULT_PROMPT, DEFAULT_QUALITY and DEFAULT_DURATION_S
    [call] = env.create.calls
    assert call["body"]["prompt"] == "Animate this image naturally"
    assert (call["body"]["quality"], call["body"]["duration"]) == ("1080p", 7)


def test_a_duplicate_notification_never_creates_a_second_generation(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    # Given an image whose job ran
    env.put("uploads/twice.json", json.dumps({"prompt": "Once only"}))
    notification = env.notification(env.put("uploads/twice.png", png(640, 480)), image_sample)
    deliver(notification)
    first = env.json_at("uploads/twice.png.generation.json")

    # When S3 delivers the same notification again (also inside one batch)
    assert deliver(notification, notification) == {"batchItemFailures": []}

    # Then there is still exactly one generation, and the result file names it
    assert len(env.create.calls) == 1
    assert len(env.generations()) == 1
    assert env.json_at("uploads/twice.png.generation.json") == first


def test_a_duplicate_arriving_while_the_job_runs_is_retried_not_run(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any], event: Event
) -> None:
    test_event = event("s3_trigger/s3_test_event")["Records"][0]["body"]
    # Given a job another attempt is running right now
    env.put("uploads/busy.json", json.dumps({"prompt": "Busy"}))
    image = env.put("uploads/busy.png", png(640, 480))
    job = uploads.UploadedObject(
        bucket=BUCKET, key="uploads/busy.png", version_id=image["version"], etag=image["etag"]
    )
    triggers.get_claim_store().acquire(
        triggers.claim_key(uploads.CLAIM_KIND, job.identity),
        job=job.identity,
        tenant_id="uploads",
        now=utcnow(),
    )

    # When its duplicate notification is delivered in a batch with another message
    response = deliver(env.notification(image, image_sample), test_event)

    # Then only that record goes back to the queue (retried later), and nothing is created
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert env.create.calls == []


def test_an_attempt_that_failed_after_writing_its_generation_is_adopted_not_repeated(
    env: Env,
    deliver: Callable[..., dict[str, Any]],
    image_sample: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a create that writes the generation and then fails
    monkeypatch.setattr(triggers, "RECOVERY_DELAY", timedelta(0))
    env.create.fail_after_write = 1
    env.put("uploads/flaky.json", json.dumps({"prompt": "Flaky"}))
    notification = env.notification(env.put("uploads/flaky.png", png(640, 480)), image_sample)
    with pytest.raises(BatchProcessingError):  # the only record of its batch failed
        deliver(notification)

    # When SQS delivers the message again
    assert deliver(notification) == {"batchItemFailures": []}

    # Then the written generation is adopted instead of creating a second one
    [generation] = env.generations()
    assert len(env.create.calls) == 1
    assert env.json_at("uploads/flaky.png.generation.json")["generation_id"] == generation.id  # type: ignore[index]


def test_a_too_small_image_gets_an_error_file_and_nothing_is_submitted(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    # Given a 200x200 image (rule 5: at least 300 px) with a sidecar
    env.put("uploads/tiny.json", json.dumps({"prompt": "Too small"}))
    image = env.put("uploads/tiny.png", png(200, 200))

    # When it arrives (twice: the rejection is final)
    deliver(env.notification(image, image_sample))
    deliver(env.notification(image, image_sample))

    # Then an error file explains why, and no generation exists
    error = env.json_at("uploads/tiny.png.error.json")
    assert error is not None
    assert error["error"]["code"] == "validation_error"
    assert [d["field"] for d in error["error"]["details"]] == ["first_frame"]
    assert "300" in error["error"]["details"][0]["issue"]
    assert env.generations() == []
    assert env.create.calls == []
    assert env.json_at("uploads/tiny.png.generation.json") is None


def test_a_sidecar_that_is_not_json_rejects_the_job(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    env.put("uploads/broken.json", "{prompt: oops")
    deliver(env.notification(env.put("uploads/broken.png", png(640, 480)), image_sample))

    error = env.json_at("uploads/broken.png.error.json")
    assert error is not None
    assert error["error"]["details"] == [
        {"field": "sidecar uploads/broken.json", "issue": "is not valid JSON"}
    ]
    assert env.create.calls == []


def test_the_tenant_is_chosen_by_the_longest_upload_prefix(
    env: Env,
    deliver: Callable[..., dict[str, Any]],
    image_sample: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given prefixes mapped to tenants
    monkeypatch.setenv(
        "UPLOAD_TENANTS", "uploads/team-a/=tenant-a, uploads/team-a/vip/=tenant-vip,uploads/=shared"
    )
    reset_settings()
    env.put("uploads/team-a/vip/x.json", json.dumps({"prompt": "VIP"}))
    env.put("uploads/team-a/y.json", json.dumps({"prompt": "A"}))
    env.put("uploads/z.json", json.dumps({"prompt": "Shared"}))

    # When images arrive under each
    for key in ("uploads/team-a/vip/x.png", "uploads/team-a/y.png", "uploads/z.png"):
        deliver(env.notification(env.put(key, png(640, 480)), image_sample))

    # Then each generation belongs to the tenant of its longest prefix
    assert {c["source"].rsplit("/", 1)[-1]: c["tenant_id"] for c in env.create.calls} == {
        "x.png": "tenant-vip",
        "y.png": "tenant-a",
        "z.png": "shared",
    }
    assert [g.request.prompt for g in env.generations("tenant-a")] == ["A"]


def test_inputs_outside_the_tenants_prefix_are_refused(
    env: Env,
    deliver: Callable[..., dict[str, Any]],
    image_sample: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given team-a's sidecar pointing at team-b's upload
    monkeypatch.setenv("UPLOAD_TENANTS", "uploads/team-a/=tenant-a,uploads/team-b/=tenant-b")
    reset_settings()
    env.put("uploads/team-b/secret.png", png(640, 480))
    env.put(
        "uploads/team-a/ref.json",
        json.dumps(
            {"mode": "reference-to-video", "reference_images": [f"s3://{BUCKET}/uploads/team-b/secret.png"]}
        ),
    )

    deliver(env.notification(env.put("uploads/team-a/ref.png", png(640, 480)), image_sample))

    error = env.json_at("uploads/team-a/ref.png.error.json")
    assert error is not None
    assert error["error"]["details"][0]["field"] == "reference_images[1]"
    assert env.create.calls == []


def test_our_own_result_files_and_the_s3_test_event_are_ignored(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any], event: Event
) -> None:
    for key in (
        "uploads/a.png.generation.json",
        "uploads/a.png.error.json",
        "uploads/notes.txt",
        "uploads/dir/",
    ):
        assert deliver(env.notification(env.put(key, "{}"), image_sample)) == {"batchItemFailures": []}
    assert deliver(event("s3_trigger/s3_test_event")["Records"][0]["body"]) == {"batchItemFailures": []}
    assert env.create.calls == []
    assert env.rechecks(wait_s=0) == []


def test_a_video_upload_is_a_video_edit_or_a_reference_to_video(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    pytest.importorskip("imageio_ffmpeg")
    from kling_local.mp4gen import make_mp4

    clip = make_mp4(1280, 720, 4.0, 24).read_bytes()
    env.put("uploads/edit.mp4.json", json.dumps({"prompt": "Make it snow"}))
    env.put(
        "uploads/ref.json",
        json.dumps({"mode": "reference-to-video", "prompt": "In the style of <<<video_1>>>"}),
    )

    deliver(env.notification(env.put("uploads/edit.mp4", clip), image_sample))
    deliver(env.notification(env.put("uploads/ref.mp4", clip), image_sample))

    edit, ref = sorted(env.generations(), key=lambda g: g.mode.value)[::-1]
    assert edit.mode.value == "video-edit"
    assert edit.request.video is not None and edit.request.video.duration_s == pytest.approx(4.0, abs=0.1)
    assert ref.mode.value == "reference-to-video"
    assert (ref.request.aspect_ratio, ref.request.duration) == ("16:9", 7)


# ---- job files ------------------------------------------------------------------------------------------


def test_a_jsonl_file_creates_one_generation_per_line_and_reports_a_bad_line(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    # Given a job file with two good lines, one bad line and a blank line
    env.put("uploads/frames/first.png", png(640, 480))
    lines = [
        json.dumps({"mode": "text-to-video", "prompt": "A lighthouse at dawn"}),
        json.dumps({"mode": "text-to-video", "prompt": "Too long", "duration": 40}),
        "",
        json.dumps({"mode": "image-to-video", "first_frame": f"s3://{BUCKET}/uploads/frames/first.png"}),
    ]
    notification = env.notification(env.put("uploads/batch.jsonl", "\n".join(lines)), image_sample)

    # When it arrives, and again (a duplicate notification)
    deliver(notification)
    deliver(notification)

    # Then lines 1 and 4 became generations once each, and line 2 is reported with its error
    assert len(env.create.calls) == 2
    result = env.json_at("uploads/batch.jsonl.generation.json")
    assert result is not None
    by_line = {item["line"]: item for item in result["generations"]}
    assert sorted(by_line) == [1, 2, 4]
    assert by_line[2]["error"]["details"][0]["field"] == "duration"
    ids = {by_line[1]["generation_id"], by_line[4]["generation_id"]}
    assert ids == {g.id for g in env.generations()}
    assert {g.metadata["source_line"] for g in env.generations()} == {"1", "4"}
    assert all(g.request.quality.value == "1080p" for g in env.generations())


def test_a_jsonl_line_that_is_not_an_object_does_not_stop_the_others(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    body = "\n".join(["[1, 2]", "not json", json.dumps({"mode": "text-to-video", "prompt": "Fine"})])
    deliver(env.notification(env.put("uploads/mixed.jsonl", body), image_sample))

    result = env.json_at("uploads/mixed.jsonl.generation.json")
    assert result is not None
    assert [item.get("error", {}).get("details", [{}])[0].get("field") for item in result["generations"]] == [
        "line 1",
        "line 2",
        None,
    ]
    assert len(env.create.calls) == 1


def test_a_job_file_whose_line_failed_is_completed_by_the_retry_without_duplicates(
    env: Env,
    deliver: Callable[..., dict[str, Any]],
    image_sample: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a job file whose first line's create fails after writing its generation
    monkeypatch.setattr(triggers, "RECOVERY_DELAY", timedelta(0))
    env.create.fail_after_write = 1
    body = "\n".join(json.dumps({"mode": "text-to-video", "prompt": f"Scene {n}"}) for n in (1, 2))
    notification = env.notification(env.put("uploads/retry.jsonl", body), image_sample)

    # When it is delivered: line 2 runs, line 1 is reported as retrying and the message goes back
    with pytest.raises(BatchProcessingError):
        deliver(notification)
    partial = env.json_at("uploads/retry.jsonl.generation.json")
    assert partial is not None
    assert [item.get("status") for item in partial["generations"]] == ["retrying", None]

    # Then the retry adopts line 1's generation and completes the result file
    deliver(notification)
    result = env.json_at("uploads/retry.jsonl.generation.json")
    assert result is not None
    assert {item["generation_id"] for item in result["generations"]} == {g.id for g in env.generations()}
    assert len(env.generations()) == 2


# ---- pure pieces ----------------------------------------------------------------------------------------


def test_roles_by_name() -> None:
    role = uploads.role_of
    assert role("uploads/a.PNG") is uploads.ObjectRole.IMAGE
    assert role("uploads/a.mov") is uploads.ObjectRole.VIDEO
    assert role("uploads/a.json") is uploads.ObjectRole.SIDECAR
    assert role("uploads/a.jsonl") is uploads.ObjectRole.JOB_FILE
    assert role("uploads/a.png.generation.json") is None
    assert role("uploads/a.png.error.json") is None
    assert role("outputs/t/a.png") is None
    assert role("uploads/README") is None


def test_media_body_keeps_the_callers_fields_and_fills_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_VIDEO_PROMPT", "Keep it as it is, but sharper")
    reset_settings()
    upload = uploads.UploadedObject(bucket="b", key="uploads/a.png", version_id="v1", etag="e")
    image = uploads.media_body(
        upload,
        uploads.ObjectRole.IMAGE,
        {"mode": "reference-to-video", "reference_images": ["https://x/y.png"], "metadata": {"k": "v"}},
    )
    assert image["reference_images"] == ["s3://b/uploads/a.png", "https://x/y.png"]
    assert image["aspect_ratio"] == "16:9"
    assert image["metadata"] == {"k": "v", "source_key": "s3://b/uploads/a.png", "source_version": "v1"}
    video = uploads.media_body(
        upload.model_copy(update={"key": "uploads/a.mp4"}), uploads.ObjectRole.VIDEO, {"shots": None}
    )
    assert video["mode"] == "video-edit"
    assert video["prompt"] == "Keep it as it is, but sharper"
    assert "duration" not in video


# ---- bad input never crashes the trigger (issue 11, item 11) -----------------------------------------------


def test_a_deeply_nested_sidecar_gets_an_error_file_not_a_dead_letter(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    env.put("uploads/deep.json", '{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}")

    response = deliver(env.notification(env.put("uploads/deep.png", png(640, 480)), image_sample))

    assert response == {"batchItemFailures": []}
    error = env.json_at("uploads/deep.png.error.json")
    assert error is not None
    assert error["error"]["details"] == [
        {"field": "sidecar uploads/deep.json", "issue": "is nested more than 32 levels deep"}
    ]
    assert env.create.calls == []


def test_a_deeply_nested_job_line_is_that_lines_error(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    body = "\n".join(["[" * 50_000 + "]" * 50_000, json.dumps({"mode": "text-to-video", "prompt": "Fine"})])

    response = deliver(env.notification(env.put("uploads/deep.jsonl", body), image_sample))

    assert response == {"batchItemFailures": []}
    result = env.json_at("uploads/deep.jsonl.generation.json")
    assert result is not None
    assert result["generations"][0]["error"]["details"] == [
        {"field": "line 1", "issue": "is nested more than 32 levels deep"}
    ]
    assert len(env.create.calls) == 1


def test_a_job_file_of_too_many_lines_is_refused_at_line_1001_in_bounded_memory(
    env: Env, deliver: Callable[..., dict[str, Any]], image_sample: dict[str, Any]
) -> None:
    # Given a 5 MiB job file of tiny lines (1.7 M of them; split whole, that was ~360 MiB of str objects)
    body = b"{}\n" * (5 * 1024 * 1024 // 3)
    notification = env.notification(env.put("uploads/many.jsonl", body), image_sample)
    del body

    tracemalloc.start()
    try:
        deliver(notification)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    error = env.json_at("uploads/many.jsonl.error.json")
    assert error is not None
    assert error["error"]["details"][0]["issue"] == "at most 1000 jobs per file; line 1001 is one too many"
    assert env.create.calls == []
    assert peak < 40 * 1024 * 1024
