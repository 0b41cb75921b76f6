"""The Python SDK against a mocked API (respx): errors, retries, pagination, wait, download, webhooks.

The local-stack behaviour (real uploads, real videos) is in tests/integration/pipeline/test_sdk_stack.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from standardwebhooks import Webhook

from kling_pipeline_sdk import (
    AsyncClient,
    AuthenticationError,
    BudgetExceededError,
    ChecksumMismatchError,
    Client,
    InvalidRequestError,
    KlingPipelineError,
    ServerError,
    WaitTimeoutError,
    WebhookVerificationError,
    verify_webhook,
)

URL = "https://api.example.test"
VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"video-bytes" * 100


def generation(status: str = "processing", **extra: Any) -> dict[str, Any]:
    return {
        "id": "gen_1",
        "status": status,
        "mode": "text-to-video",
        "model": "kling-o3",
        "created_at": "2026-01-15T09:30:00Z",
        "updated_at": "2026-01-15T09:30:05Z",
        "request": {"mode": "text-to-video", "prompt": "x"},
        **extra,
    }


def finished(sha256: str | None = None) -> dict[str, Any]:
    output = {
        "s3_uri": "s3://bucket/outputs/t/gen_1/video-1.mp4",
        "url": "https://bucket.s3.example.test/video-1.mp4?sig=1",
        "bytes": len(VIDEO),
        "sha256": sha256 or hashlib.sha256(VIDEO).hexdigest(),
    }
    return generation("succeeded", progress=100, outputs=[output])


@pytest.fixture
def client() -> Any:
    with Client(URL, "key-1", max_retries=2) as sdk:
        sdk._sleep = SLEEPS.append  # no real waiting; the delays are asserted
        SLEEPS.clear()
        yield sdk


SLEEPS: list[float] = []


@respx.mock
def test_configuration_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KLING_PIPELINE_URL", URL + "/")
    monkeypatch.setenv("KLING_PIPELINE_API_KEY", "env-key")
    route = respx.get(f"{URL}/v1/generations/gen_1").respond(json=generation())
    with Client() as sdk:
        assert sdk.get("gen_1").status == "processing"
    assert route.calls.last.request.headers["x-api-key"] == "env-key"


def test_missing_configuration_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KLING_PIPELINE_URL", raising=False)
    with pytest.raises(KlingPipelineError, match="KLING_PIPELINE_URL"):
        Client(api_key="k")


@respx.mock
def test_errors_carry_code_and_field_details(client: Client) -> None:
    respx.post(f"{URL}/v1/generations").respond(
        422,
        json={
            "error": {
                "code": "validation_error",
                "message": "the request is invalid",
                "details": [{"field": "shots[1].duration", "issue": "must be at least 1"}],
            }
        },
    )
    with pytest.raises(InvalidRequestError) as caught:
        client.create(mode="text-to-video", prompt="x")
    assert caught.value.code == "validation_error"
    assert caught.value.details[0].field == "shots[1].duration"
    assert "shots[1].duration" in str(caught.value)


@respx.mock
def test_auth_errors_are_their_own_class(client: Client) -> None:
    respx.get(f"{URL}/v1/generations/gen_1").respond(
        403, json={"error": {"code": "forbidden", "message": "missing or invalid x-api-key"}}
    )
    with pytest.raises(AuthenticationError):
        client.get("gen_1")


@respx.mock
def test_429_and_503_are_retried_after_the_retry_after_header(client: Client) -> None:
    route = respx.get(f"{URL}/v1/generations/gen_1").mock(
        side_effect=[
            httpx.Response(
                429, headers={"Retry-After": "7"}, json={"error": {"code": "rate_limited", "message": ""}}
            ),
            httpx.Response(503, headers={"Retry-After": "2"}),
            httpx.Response(200, json=generation()),
        ]
    )
    assert client.get("gen_1").id == "gen_1"
    assert route.call_count == 3
    assert SLEEPS == [7.0, 2.0]


@respx.mock
def test_retries_stop_after_max_retries(client: Client) -> None:
    respx.get(f"{URL}/v1/generations/gen_1").respond(
        503, json={"error": {"code": "unavailable", "message": "x"}}
    )
    with pytest.raises(ServerError) as caught:
        client.get("gen_1")
    assert caught.value.status == 503
    assert len(SLEEPS) == 2


@respx.mock
def test_a_create_is_retried_with_the_same_idempotency_key(client: Client) -> None:
    route = respx.post(f"{URL}/v1/generations").mock(
        side_effect=[httpx.Response(502), httpx.Response(202, json=generation("queued"))]
    )
    assert client.create({"mode": "text-to-video"}, prompt="x", duration=None).status == "queued"
    first, second = (call.request for call in route.calls)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert json.loads(first.content) == {"mode": "text-to-video", "prompt": "x"}


@respx.mock
def test_a_cancel_is_not_resent_after_a_502(client: Client) -> None:
    route = respx.post(f"{URL}/v1/generations/gen_1/cancel").respond(502)
    with pytest.raises(ServerError):
        client.cancel("gen_1")
    assert route.call_count == 1


@respx.mock
def test_list_follows_cursors_and_stops_at_the_limit(client: Client) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        if cursor is None:
            return httpx.Response(200, json={"items": [generation(), generation()], "next_cursor": "c2"})
        return httpx.Response(200, json={"items": [generation("queued")] * 2, "next_cursor": "c3"})

    route = respx.get(f"{URL}/v1/generations").mock(side_effect=page)
    items = list(client.list(status="queued", limit=3, page_size=2))
    assert [item.status for item in items] == ["processing", "processing", "queued"]
    assert route.call_count == 2
    assert route.calls.last.request.url.params["status"] == "queued"


@respx.mock
def test_wait_reports_progress_and_backs_off(client: Client) -> None:
    respx.get(f"{URL}/v1/generations/gen_1").mock(
        side_effect=[
            httpx.Response(200, json=generation("queued", queue_position=2)),
            httpx.Response(200, json=generation("processing", progress=40)),
            httpx.Response(200, json=finished()),
        ]
    )
    seen: list[tuple[str, int | None]] = []
    final = client.wait(
        "gen_1", on_progress=lambda g: seen.append((g.status, g.progress or g.queue_position))
    )
    assert final.done and final.status == "succeeded"
    assert seen == [("queued", 2), ("processing", 40), ("succeeded", 100)]
    assert SLEEPS == [1.0, 1.5]


@respx.mock
def test_wait_times_out_with_the_last_state(client: Client) -> None:
    respx.get(f"{URL}/v1/generations/gen_1").respond(json=generation("processing", progress=10))
    client._sleep = time.sleep
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait("gen_1", timeout_s=0.05, poll_interval_s=0.02)
    assert caught.value.generation.progress == 10


@respx.mock
def test_download_streams_and_verifies_sha256(client: Client, tmp_path: Path) -> None:
    respx.get(f"{URL}/v1/generations/gen_1").respond(json=finished())
    s3 = respx.get("https://bucket.s3.example.test/video-1.mp4").respond(content=VIDEO)
    [path] = client.download("gen_1", tmp_path / "out")
    assert path == tmp_path / "out" / "gen_1.mp4"
    assert path.read_bytes() == VIDEO
    assert "x-api-key" not in s3.calls.last.request.headers


@respx.mock
def test_download_with_a_wrong_checksum_leaves_no_file(client: Client, tmp_path: Path) -> None:
    respx.get(f"{URL}/v1/generations/gen_1").respond(json=finished(sha256="0" * 64))
    respx.get("https://bucket.s3.example.test/video-1.mp4").respond(content=VIDEO)
    with pytest.raises(ChecksumMismatchError):
        client.download("gen_1", tmp_path)
    assert list(tmp_path.iterdir()) == []


@respx.mock
def test_upload_posts_the_file_to_the_presigned_url(client: Client, tmp_path: Path) -> None:
    image = tmp_path / "face.PNG"
    image.write_bytes(b"\x89PNG fake")
    ticket = respx.post(f"{URL}/v1/uploads").respond(
        json={
            "url": "https://bucket.s3.example.test/",
            "fields": {"key": "inputs/t/upl_1/face.png", "policy": "p"},
            "s3_uri": "s3://bucket/inputs/t/upl_1/face.png",
            "content_type": "image/png",
            "max_bytes": 10485760,
            "expires_at": "2026-01-15T09:45:00Z",
        }
    )
    s3 = respx.post("https://bucket.s3.example.test/").respond(204)
    assert client.upload(image) == "s3://bucket/inputs/t/upl_1/face.png"
    assert json.loads(ticket.calls.last.request.content) == {
        "filename": "face.PNG",
        "content_type": "image/png",
        "size_bytes": 9,
    }
    sent = s3.calls.last.request.content
    assert b'name="policy"' in sent and b"\x89PNG fake" in sent
    with pytest.raises(KlingPipelineError, match="only JPG"):
        client.upload(tmp_path / "notes.txt")


def test_verify_webhook_accepts_standard_webhooks_signatures() -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = json.dumps(
        {"type": "generation.succeeded", "timestamp": "2026-01-15T09:30:05Z", "data": {"id": "g"}}
    )
    moment = datetime.now(UTC)
    signature = Webhook(secret).sign("msg_1", moment, body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }

    event = verify_webhook(body, headers, secret)

    assert event.type == "generation.succeeded" and event.data == {"id": "g"}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body.replace("g", "h"), headers, secret)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(body, headers, secret, now=moment.timestamp() + 3600)


@respx.mock
def test_async_client_creates_waits_and_lists() -> None:
    respx.post(f"{URL}/v1/generations").respond(202, json=generation("queued"))
    respx.get(f"{URL}/v1/generations/gen_1").mock(
        side_effect=[httpx.Response(200, json=generation()), httpx.Response(200, json=finished())]
    )
    respx.get(f"{URL}/v1/generations").respond(json={"items": [generation()], "next_cursor": None})

    async def scenario() -> tuple[str, list[str], int]:
        progress: list[str] = []

        async def record(g: Any) -> None:
            progress.append(g.status)

        async with AsyncClient(URL, "key-1") as sdk:
            sdk._sleep = lambda _s: asyncio.sleep(0)
            created = await sdk.create(mode="text-to-video", prompt="x")
            final = await sdk.wait(created.id, on_progress=record)
            listed = [item async for item in sdk.list()]
            return final.status, progress, len(listed)

    assert asyncio.run(scenario()) == ("succeeded", ["processing", "succeeded"], 1)


@respx.mock
def test_a_budget_refusal_keeps_its_figures(client: Client) -> None:
    figures = {"month": "2026-01", "budget_usd": "5.0000", "spent_usd": "4.9000", "reserved_usd": "0.0000",
               "estimate_usd": "0.3750"}  # fmt: skip
    respx.post(f"{URL}/v1/generations").respond(
        402, json={"error": {"code": "budget_exceeded", "message": "over budget", "details": figures}}
    )
    with pytest.raises(BudgetExceededError) as caught:
        client.create(mode="text-to-video", prompt="x")
    assert caught.value.code == "budget_exceeded"
    assert caught.value.details == []
    assert caught.value.error["details"]["budget_usd"] == "5.0000"


@respx.mock
def test_usage_is_typed(client: Client) -> None:
    respx.get(f"{URL}/v1/usage").respond(
        json={"month": "2026-01", "budget_usd": None, "spent_usd": "1.2500", "reserved_usd": "0.3750",
              "counts": {"created": 4}, "by_provider": {"kling": {"usd": "1.2500"}}, "by_mode": {}}
    )  # fmt: skip
    usage = client.usage("2026-01")
    assert usage.spent_usd == Decimal("1.2500") and usage.budget_usd is None
    assert respx.calls.last.request.url.params["month"] == "2026-01"
