"""Ingest against a provider (respx) and AWS (moto): expired links, broken downloads, non-MP4 files."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from datetime import timedelta

import boto3
import httpx
import pytest
import respx

from kling_local.mp4gen import make_mp4
from kling_pipeline.domain.generation import utcnow
from kling_pipeline.domain.status import Status
from kling_pipeline.services.download import DownloadFailed
from kling_pipeline.services.ingest import IngestBusy, IngestMessage, ingest
from kling_pipeline.store.generations import get_generation_store

from .conftest import PROVIDER, stored_generation

TASK = "tk_1"
KEY = "outputs/tenant-a/gen_test/video-1.mp4"


@pytest.fixture(scope="module")
def video() -> bytes:
    return make_mp4(320, 240, 1.0).read_bytes()


@pytest.fixture
def aws(pipeline_aws: None) -> None:
    get_generation_store().create(stored_generation())


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
    assert current is not None and current.status is Status.PROCESSING
    item = boto3.resource("dynamodb").Table("generations").get_item(Key={"pk": "GEN#gen_test", "sk": "GEN"})
    assert "ingest_lease_until" not in item["Item"]  # the lease is given back for the retry

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


@respx.mock(assert_all_called=False)
def test_the_providers_failure_text_is_logged_never_stored_for_the_tenant(
    aws: None, respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a provider whose failure text names its account and an internal host
    leak = "account 4711 over quota on gpu-17.internal.kling (10.3.2.1)"
    task = {"task_id": TASK, "task_status": "failed", "task_status_msg": leak}
    respx_mock.get(url__regex=rf"{PROVIDER}/v1/videos/[a-z0-9-]+/{TASK}").mock(
        return_value=httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": task})
    )

    result = ingest(IngestMessage(generation_id="gen_test"))

    # Then the tenant sees a fixed sentence for the code; the operator's log has the provider's words
    assert result is not None and result.status is Status.FAILED
    assert result.error is not None and result.error.code == "provider_error"
    assert result.error.message == "the provider could not generate the video"
    assert leak not in get_generation_store().get("gen_test").model_dump_json()  # type: ignore[union-attr]
    assert any(getattr(record, "provider_message", None) == leak for record in caplog.records)


class Endless(httpx.SyncByteStream):
    """A CDN that streams a valid MP4 followed by a 1 TiB `free` box, i.e. forever; counts what was pulled.
    (Past 64 MiB it gives up with a read error, so a test without the cap ends instead of hanging.)"""

    def __init__(self, video: bytes) -> None:
        self.head = video + struct.pack(">I4sQ", 1, b"free", 1024**4)
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        self.pulled += len(self.head)
        yield self.head
        while self.pulled < 64 * 1024 * 1024:
            self.pulled += 65536
            yield bytes(65536)
        raise httpx.ReadError("the test's patience ran out")


@pytest.fixture
def small_output_limit(monkeypatch: pytest.MonkeyPatch, video: bytes) -> int:
    from kling_pipeline.caches import reset_caches

    limit = len(video) + 100_000
    monkeypatch.setenv("MAX_OUTPUT_BYTES", str(limit))
    reset_caches()
    return limit


@respx.mock(assert_all_called=False)
def test_an_output_declared_larger_than_the_limit_is_refused_before_reading(
    aws: None, video: bytes, small_output_limit: int, respx_mock: respx.MockRouter
) -> None:
    respx_mock.get(url__regex=rf"{PROVIDER}/v1/videos/[a-z0-9-]+/{TASK}").mock(
        return_value=succeeded(f"{PROVIDER}/files/huge.mp4")
    )
    stream = Endless(video)
    respx_mock.get(f"{PROVIDER}/files/huge.mp4").mock(
        return_value=httpx.Response(200, headers={"content-length": str(50 * 1024**3)}, stream=stream)
    )

    result = ingest(IngestMessage(generation_id="gen_test"))

    assert result is not None and result.status is Status.FAILED
    assert result.error is not None and result.error.code == "invalid_output"
    assert stream.pulled == 0
    assert stored_objects() == [] and open_uploads() == []


@respx.mock(assert_all_called=False)
def test_an_endless_output_is_cut_off_at_the_limit(
    aws: None, video: bytes, small_output_limit: int, respx_mock: respx.MockRouter
) -> None:
    respx_mock.get(url__regex=rf"{PROVIDER}/v1/videos/[a-z0-9-]+/{TASK}").mock(
        return_value=succeeded(f"{PROVIDER}/files/endless.mp4")
    )
    stream = Endless(video)
    respx_mock.get(f"{PROVIDER}/files/endless.mp4").mock(return_value=httpx.Response(200, stream=stream))

    result = ingest(IngestMessage(generation_id="gen_test"))

    assert result is not None and result.status is Status.FAILED
    assert result.error is not None and result.error.code == "invalid_output"
    assert stream.pulled <= small_output_limit + 2 * 1024 * 1024
    assert stored_objects() == [] and open_uploads() == []


@respx.mock(assert_all_called=False)
def test_taking_over_a_dead_ingests_lease_aborts_the_upload_it_left_open(
    aws: None, video: bytes, respx_mock: respx.MockRouter
) -> None:
    # Found by the chaos run: an ingest that dies mid-upload (no except/finally runs) leaves its lease
    # and an open multipart upload; the next ingest took the expired lease but left the upload behind.
    s3 = boto3.client("s3")
    s3.create_multipart_upload(Bucket="media", Key=KEY)

    # ... its holder died: the lease it took an hour ago has run out, and nobody released it
    store = get_generation_store()
    assert store.claim_ingest(
        "gen_test", now=utcnow() - timedelta(hours=1), lease=timedelta(seconds=1)
    ).claimed
    respx_mock.get(url__regex=rf"{PROVIDER}/v1/videos/[a-z0-9-]+/{TASK}").mock(
        return_value=succeeded(f"{PROVIDER}/files/v.mp4")
    )
    respx_mock.get(f"{PROVIDER}/files/v.mp4").mock(return_value=httpx.Response(200, content=video))

    result = ingest(IngestMessage(generation_id="gen_test"))

    assert result is not None and result.status is Status.SUCCEEDED
    assert stored_objects() == [KEY] and open_uploads() == []


@respx.mock(assert_all_called=False)
def test_a_live_lease_keeps_other_ingests_out(aws: None, respx_mock: respx.MockRouter) -> None:
    assert get_generation_store().claim_ingest("gen_test", now=utcnow(), lease=timedelta(seconds=60)).claimed
    respx_mock.get(url__regex=rf"{PROVIDER}/v1/videos/[a-z0-9-]+/{TASK}").mock(
        return_value=succeeded(f"{PROVIDER}/files/v.mp4")
    )
    with pytest.raises(IngestBusy):
        ingest(IngestMessage(generation_id="gen_test"))
