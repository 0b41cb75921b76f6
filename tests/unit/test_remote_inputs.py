"""`https://` inputs are checked like `s3://` ones before any credit is spent (issue 11, "Inputs are checked
before credits are spent"): header-only ranged GETs through the SSRF guard, within a time and byte budget.

A real HTTP server on loopback plays the CDN (the local stack's `LOCAL_ALLOW_HTTP_LOOPBACK=1` admits
`http://127.0.0.1`); the Kling provider is configured at an address nothing listens on, so any provider
call would fail the test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kling_local.mp4gen import make_mp4
from kling_local.samples import png
from kling_pipeline.caches import reset_caches
from kling_pipeline.domain.request import parse_generation_request
from kling_pipeline.errors import InvalidInput
from kling_pipeline.services.inputs import check_inputs
from tests.media_server import MediaServer


@pytest.fixture(scope="module")
def media() -> dict[str, bytes]:
    return {
        "/ok.png": png(1280, 720),
        "/tiny.png": png(100, 100),
        "/clip.mp4": make_mp4(1280, 720, 4.0).read_bytes(),
        "/short.mp4": make_mp4(1280, 720, 2.0).read_bytes(),
    }


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LOCAL_ALLOW_HTTP_LOOPBACK", "1")
    monkeypatch.setenv("INPUT_PROBE_TIMEOUT_S", "1")
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def cdn(media: dict[str, bytes], local: None) -> Iterator[MediaServer]:
    server = MediaServer(media)
    yield server
    server.close()


def check(body: dict[str, Any]) -> Any:
    return check_inputs(parse_generation_request(body), tenant_id="tenant-a")


def issues(raised: pytest.ExceptionInfo[InvalidInput]) -> dict[str, str]:
    return {detail.field: detail.issue for detail in raised.value.details}


def test_a_too_small_https_image_is_a_field_error_read_from_its_header(cdn: MediaServer) -> None:
    with pytest.raises(InvalidInput) as raised:
        check({"mode": "image-to-video", "first_frame": f"{cdn.base}/tiny.png"})

    assert "at least 300 px" in issues(raised)["first_frame"]
    assert cdn.requests == ["bytes=0-65535"]  # one ranged GET: the header block


def test_every_bad_input_is_reported_at_once(cdn: MediaServer) -> None:
    body = {
        "mode": "image-to-video",
        "first_frame": f"{cdn.base}/tiny.png",
        "reference_images": [f"{cdn.base}/ok.png", f"{cdn.base}/missing.png"],
    }
    with pytest.raises(InvalidInput) as raised:
        check(body)

    found = issues(raised)
    assert set(found) == {"first_frame", "reference_images[1]"}
    assert found["reference_images[1]"] == "could not be fetched: HTTP 404"


def test_a_good_https_video_sets_the_measured_length_for_the_quote(
    cdn: MediaServer, media: dict[str, bytes]
) -> None:
    request = check(
        {"mode": "video-edit", "prompt": "Make it snow", "video": {"url": f"{cdn.base}/clip.mp4"}}
    )

    assert request.video.duration_s == pytest.approx(4.0, abs=0.05)
    assert cdn.sent < len(media["/clip.mp4"])  # headers only, never the whole file


def test_a_too_short_https_video_is_a_field_error(cdn: MediaServer) -> None:
    with pytest.raises(InvalidInput) as raised:
        check({"mode": "video-edit", "prompt": "Make it snow", "video": {"url": f"{cdn.base}/short.mp4"}})

    assert "between 3 and 10 s" in issues(raised)["video.url"]


def test_a_host_that_does_not_answer_is_a_clear_error_within_the_budget(
    media: dict[str, bytes], local: None
) -> None:
    stalled = MediaServer(media, stall_s=5)
    started = time.monotonic()
    try:
        with pytest.raises(InvalidInput) as raised:
            check({"mode": "image-to-video", "first_frame": f"{stalled.base}/ok.png"})
    finally:
        elapsed = time.monotonic() - started
        stalled.close()

    assert issues(raised)["first_frame"] == "did not answer within 1 s (127.0.0.1)"
    assert elapsed < 3


def test_a_server_without_range_support_is_read_only_within_the_byte_budget(
    media: dict[str, bytes], local: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INPUT_PROBE_MAX_BYTES", str(1024 * 1024))
    reset_caches()
    big = MediaServer({"/big.mp4": media["/clip.mp4"] + bytes(3 * 1024 * 1024)}, ranges=False)
    try:
        with pytest.raises(InvalidInput) as raised:
            check({"mode": "video-edit", "prompt": "x", "video": {"url": f"{big.base}/big.mp4"}})
    finally:
        big.close()

    assert "range requests" in issues(raised)["video.url"]


def test_https_inputs_to_internal_addresses_are_refused_before_any_request() -> None:
    with pytest.raises(InvalidInput) as raised:
        check({"mode": "image-to-video", "first_frame": "http://127.0.0.1:9/a.png"})  # switch off: refused

    assert "first_frame" in issues(raised)


def test_an_estimate_for_a_too_small_https_image_answers_422_without_asking_a_provider(
    pipeline_aws: None, event: Any, lambda_context: Any, media: dict[str, bytes]
) -> None:
    from functions.api.app import lambda_handler

    server = MediaServer(media)
    try:
        request = event("api/create_estimate")
        request["body"] = json.dumps({"mode": "image-to-video", "first_frame": f"{server.base}/tiny.png"})
        response = lambda_handler(request, lambda_context)
    finally:
        server.close()

    assert response["statusCode"] == 422
    [detail] = json.loads(response["body"])["error"]["details"]
    assert detail["field"] == "first_frame" and "at least 300 px" in detail["issue"]


def test_the_simulators_samples_are_valid_inputs_served_by_range() -> None:
    import anyio
    import httpx
    from starlette.applications import Starlette

    from kling_local import samples
    from kling_pipeline.domain.media import BytesReader, check_image, check_video, probe_image, probe_video

    async def fetch() -> tuple[httpx.Response, bytes, bytes]:
        transport = httpx.ASGITransport(app=Starlette(routes=samples.ROUTES))
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            head = await client.get("/samples/image.png?size=1280x720", headers={"range": "bytes=0-15"})
            image = (await client.get("/samples/image.png?size=1280x720")).content
            video = (await client.get("/samples/clip.mp4?duration=4")).content
            return head, image, video

    head, image, video = anyio.run(fetch)

    assert head.status_code == 206 and head.headers["content-range"].startswith("bytes 0-15/")
    assert check_image(probe_image(BytesReader(image)), "first_frame") == []
    info = probe_video(BytesReader(video))
    assert check_video(info, "video.url") == [] and info.duration_s == pytest.approx(4.0, abs=0.05)


def test_a_video_edit_estimate_is_priced_on_the_https_inputs_measured_length(
    pipeline_aws: None, event: Any, lambda_context: Any, media: dict[str, bytes]
) -> None:
    from functions.api.app import lambda_handler

    server = MediaServer(media)
    try:
        request = event("api/create_estimate")
        request["body"] = json.dumps(
            {"mode": "video-edit", "prompt": "Make it snow", "video": {"url": f"{server.base}/clip.mp4"}}
        )
        response = lambda_handler(request, lambda_context)
    finally:
        server.close()

    assert response["statusCode"] == 200, response["body"]
    quotes = json.loads(response["body"])["quotes"]
    assert {quote["billed_seconds"] for quote in quotes if quote["supported"]} == {4}
    assert "length unknown" not in response["body"]
