"""`POST /v1/uploads`: a presigned POST into inputs/<tenant>/…, then the s3:// URI as an input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kling_local.demo import png
from kling_local.stack.runner import LocalStack

from .conftest import wait_terminal

pytestmark = pytest.mark.integration


def send(ticket: dict[str, Any], data: bytes, filename: str = "file") -> httpx.Response:
    """What a browser form or the SDK does with the ticket: the fields, then the file, to S3."""
    return httpx.post(
        ticket["url"],
        data=ticket["fields"],
        files={"file": (filename, data, ticket["content_type"])},
        timeout=30,
    )


def test_an_uploaded_image_becomes_the_first_frame(sim: Any, api: httpx.Client, stack: LocalStack) -> None:
    # Given a ticket for a PNG
    answer = api.post("/v1/uploads", json={"filename": "My portrait (1).PNG", "content_type": "image/png"})
    assert answer.status_code == 200, answer.text
    ticket = answer.json()
    assert ticket["s3_uri"].startswith(f"s3://{stack.bucket}/inputs/tenant-a/upl_")
    assert ticket["s3_uri"].endswith("/My-portrait-1.png")
    assert ticket["max_bytes"] == 10 * 1024 * 1024
    assert ticket["expires_at"].endswith("Z")

    # When the file is sent to S3 with it and used as an input
    assert send(ticket, png(640, 480)).status_code in {200, 201, 204}
    created = api.post(
        "/v1/generations",
        json={
            "mode": "image-to-video",
            "prompt": "She smiles",
            "first_frame": ticket["s3_uri"],
            "duration": 3,
        },
    )

    # Then the generation runs on it
    assert created.status_code == 202, created.text
    assert wait_terminal(api, created.json()["id"])["status"] == "succeeded"


def test_the_input_checks_apply_to_what_was_uploaded(api: httpx.Client) -> None:
    ticket = api.post("/v1/uploads", json={"filename": "tiny.png", "content_type": "image/png"}).json()
    send(ticket, png(100, 100))

    refused = api.post(
        "/v1/generations", json={"mode": "image-to-video", "prompt": "x", "first_frame": ticket["s3_uri"]}
    )

    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "first_frame"


def test_another_tenant_cannot_use_the_upload(api: httpx.Client, api_b: httpx.Client) -> None:
    ticket = api.post("/v1/uploads", json={"filename": "mine.png", "content_type": "image/png"}).json()
    send(ticket, png(640, 480))

    refused = api_b.post(
        "/v1/generations", json={"mode": "image-to-video", "prompt": "x", "first_frame": ticket["s3_uri"]}
    )

    assert refused.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filename": "a.gif", "content_type": "image/gif"}, "content_type"),
        (
            {"filename": "big.png", "content_type": "image/png", "size_bytes": 10 * 1024 * 1024 + 1},
            "size_bytes",
        ),
        ({"filename": "", "content_type": "video/mp4"}, "filename"),
    ],
)
def test_bad_upload_requests_name_the_field(api: httpx.Client, body: dict[str, Any], field: str) -> None:
    answer = api.post("/v1/uploads", json=body)
    assert answer.status_code == 422
    assert [detail["field"] for detail in answer.json()["error"]["details"]] == [field]


def test_the_policy_pins_type_and_size_and_browsers_may_post(api: httpx.Client, stack: LocalStack) -> None:
    ticket = api.post("/v1/uploads", json={"filename": "clip.mov", "content_type": "video/quicktime"}).json()
    assert ticket["max_bytes"] == 200 * 1024 * 1024
    assert ticket["fields"]["Content-Type"] == "video/quicktime"
    assert ticket["s3_uri"].endswith("/clip.mov")
    assert {"policy", "key"} <= set(ticket["fields"])
    preflight = httpx.options(
        ticket["url"],
        headers={"Origin": "http://127.0.0.1:1", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers.get("access-control-allow-origin") in {"*", "http://127.0.0.1:1"}
