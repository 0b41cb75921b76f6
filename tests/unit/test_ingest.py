"""Ingest against a provider (respx) and AWS (moto): expired links, broken downloads, non-MP4 files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import boto3
import httpx
import pytest
import respx
from moto import mock_aws

from kling_local.mp4gen import make_mp4
from kling_local.stack.template import Template
from kling_pipeline.caches import reset_caches
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.domain.request import parse_generation_request
from kling_pipeline.domain.status import Status
from kling_pipeline.services.download import DownloadFailed
from kling_pipeline.services.ingest import IngestMessage, ingest
from kling_pipeline.store.generations import get_generation_store

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "http://127.0.0.1:9"
TASK = "tk_1"
KEY = "outputs/tenant-a/gen_test/video-1.mp4"


@pytest.fixture(scope="module")
def video() -> bytes:
    return make_mp4(320, 240, 1.0).read_bytes()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "GENERATIONS_TABLE": "generations",
        "BUCKET_NAME": "media",
        "EVENT_BUS_NAME": "bus",
        "KLING_API_BASE_URL": PROVIDER,
        "KLING_ACCESS_KEY": "ak",
        "KLING_SECRET_KEY": "sk-for-tests-only-long-enough-for-hs256",
        "LOCAL_ALLOW_HTTP_LOOPBACK": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    props = Template.load(ROOT / "template.yaml").resources["GenerationsTable"].properties
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="generations",
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("s3").create_bucket(Bucket="media")
        boto3.client("events").create_event_bus(Name="bus")
        reset_caches()
        now = utcnow()
        get_generation_store().create(
            Generation(
                id="gen_test",
                tenant_id="tenant-a",
                status=Status.PROCESSING,
                mode="text-to-video",
                model="kling-o3",
                provider="kling",
                provider_task_id=TASK,
                created_at=now,
                updated_at=now,
                request=parse_generation_request({"mode": "text-to-video", "prompt": "x"}),
                deadline_at=now + timedelta(hours=1),
            )
        )
        yield
        reset_caches()


def succeeded(url: str) -> httpx.Response:
    task = {"task_id": TASK, "task_status": "succeed", "task_result": {"videos": [{"id": "v", "url": url}]}}
    return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": task})


class BreaksMidway(httpx.SyncByteStream):
    def __init__(self, head: bytes) -> None:
        self.head = head

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        raise httpx.ReadError("connection reset by peer")


def stored_objects() -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket="media")
    return [item["Key"] for item in listing.get("Contents", [])]


def open_uploads() -> list[str]:
    return [
        upload["Key"]
        for upload in boto3.client("s3").list_multipart_uploads(Bucket="media").get("Uploads", [])
    ]


@respx.mock(assert_all_called=False)
def test_an_expired_link_is_replaced_by_one_fresh_query(
    aws: None, video: bytes, respx_mock: respx.MockRouter
) -> None:
    query = respx_mock.get(url__regex=rf"{PROVIDER}/v1/videos/[a-z0-9-]+/{TASK}").mock(
        side_effect=[succeeded(f"{PROVIDER}/files/old.mp4"), succeeded(f"{PROVIDER}/files/new.mp4")]
    )
    respx_mock.get(f"{PROVIDER}/files/old.mp4").mock(return_value=httpx.Response(403))
    respx_mock.get(f"{PROVIDER}/files/new.mp4").mock(return_value=httpx.Response(200, content=video))

    result = ingest(IngestMessage(generation_id="gen_test"))

    assert result is not None and result.status is Status.SUCCEEDED
    assert query.call_count == 2
    assert result.outputs[0].sha256 == hashlib.sha256(video).hexdigest()
    assert boto3.client("s3").get_object(Bucket="media", Key=KEY)["Body"].read() == video


@respx.mock(assert_all_called=False)
def test_a_download_cut_midway_leaves_no_object_and_can_be_retried(
    aws: None, video: bytes, respx_mock: respx.MockRouter
) -> None:
    respx_mock.get(url__regex=rf"{PROVIDER}/v1/videos/[a-z0-9-]+/{TASK}").mock(
        return_value=succeeded(f"{PROVIDER}/files/v.mp4")
    )
    download = respx_mock.get(f"{PROVIDER}/files/v.mp4")
    download.mock(return_value=httpx.Response(200, stream=BreaksMidway(video[: len(video) // 2])))

    with pytest.raises(DownloadFailed):
        ingest(IngestMessage(generation_id="gen_test"))

    assert stored_objects() == [] and open_uploads() == []
    current = get_generation_store().get("gen_test")
    assert current is not None and current.status is Status.PROCESSING and current.ingest_lease_until is None

    download.mock(return_value=httpx.Response(200, content=video))
    retried = ingest(IngestMessage(generation_id="gen_test"))
    assert retried is not None and retried.status is Status.SUCCEEDED
    assert stored_objects() == [KEY]


@respx.mock(assert_all_called=False)
def test_a_file_that_is_not_an_mp4_fails_the_generation_and_stores_nothing(
    aws: None, respx_mock: respx.MockRouter
) -> None:
    respx_mock.get(url__regex=rf"{PROVIDER}/v1/videos/[a-z0-9-]+/{TASK}").mock(
        return_value=succeeded(f"{PROVIDER}/files/v.mp4")
    )
    respx_mock.get(f"{PROVIDER}/files/v.mp4").mock(
        return_value=httpx.Response(200, content=b"<html>oops</html>")
    )

    result = ingest(IngestMessage(generation_id="gen_test"))

    assert result is not None and result.status is Status.FAILED
    assert result.error is not None and result.error.code == "invalid_output"
    assert stored_objects() == [] and open_uploads() == []
