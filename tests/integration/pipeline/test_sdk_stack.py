"""The SDK against the local stack: upload → create → wait with progress → download, as a user does."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from kling_local.demo import png
from kling_local.stack.runner import LocalStack
from kling_pipeline_sdk import AsyncClient, Client, Generation, InvalidRequestError, NotFoundError

from .conftest import KEY_A, KEY_B

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stack: LocalStack, sim: Any) -> Any:
    with Client(stack.api_url, KEY_A) as sdk:
        yield sdk


def test_upload_create_wait_download(client: Client, tmp_path: Path) -> None:
    image = tmp_path / "portrait.png"
    image.write_bytes(png(720, 1280))
    first_frame = client.upload(image)
    assert first_frame.startswith("s3://") and first_frame.endswith("/portrait.png")

    estimate = client.estimate(mode="image-to-video", prompt="She waves", first_frame=first_frame, duration=3)
    assert estimate.chosen is not None and estimate.chosen_quote is not None
    created = client.create(mode="image-to-video", prompt="She waves", first_frame=first_frame, duration=3)
    assert created.status in {"queued", "submitted"}

    seen: list[Generation] = []
    final = client.wait(created.id, timeout_s=60, poll_interval_s=0.3, on_progress=seen.append)

    assert final.status == "succeeded", final.error
    assert seen[-1].status == "succeeded" and len(seen) >= 2
    [path] = client.download(final, tmp_path / "out")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == final.outputs[0].sha256
    assert path.read_bytes()[4:8] == b"ftyp"
    assert created.id in [item.id for item in client.list(limit=50)]


def test_errors_and_tenancy(client: Client, stack: LocalStack) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.create(mode="text-to-video", prompt="x", duration=99)
    assert [detail.field for detail in caught.value.details] == ["duration"]
    mine = client.create(mode="text-to-video", prompt="Only mine", duration=3)
    with Client(stack.api_url, KEY_B) as other, pytest.raises(NotFoundError):
        other.get(mine.id)
    assert client.cancel(mine.id).status in {"canceled", "succeeded"}
    assert client.webhook_secret().startswith("whsec_")


def test_async_client_against_the_stack(stack: LocalStack, sim: Any) -> None:
    async def scenario() -> Generation:
        async with AsyncClient(stack.api_url, KEY_A) as sdk:
            created = await sdk.create(mode="text-to-video", prompt="An async lighthouse", duration=3)
            return await sdk.wait(created.id, timeout_s=60, poll_interval_s=0.3)

    assert asyncio.run(scenario()).status == "succeeded"
