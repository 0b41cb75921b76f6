"""Requests that arrive together are handled together, each with its own event: the local stack runs them
on threads of one process, and each thread must behave as a Lambda execution environment of its own
(found by the chaos run: a create read another request's body and answered 409, a request with a valid key
read a callback's event and answered 401)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_concurrent_creates_and_lists_each_see_their_own_request(
    api: httpx.Client, api_b: httpx.Client, sim: Any
) -> None:
    def create(index: int) -> tuple[str, httpx.Response]:
        client, tenant = (api, "a") if index % 2 else (api_b, "b")
        prompt = f"Concurrent request {index} of tenant {tenant}"
        body = {"mode": "text-to-video", "prompt": prompt, "duration": 3, "metadata": {"n": str(index)}}
        return prompt, client.post(
            "/v1/generations", json=body, headers={"Idempotency-Key": f"concurrent-{index}"}
        )

    def list_b(_: int) -> httpx.Response:
        return api_b.get("/v1/generations", params={"limit": 100})

    with ThreadPoolExecutor(max_workers=16) as pool:
        creates = list(pool.map(create, range(24)))
        lists = list(pool.map(list_b, range(8)))

    for prompt, answer in creates:
        assert answer.status_code == 202, answer.text
        assert answer.json()["request"]["prompt"] == prompt
    assert len({answer.json()["id"] for _, answer in creates}) == 24
    for answer in lists:
        assert answer.status_code == 200, answer.text
        assert all("tenant a" not in item["request"]["prompt"] for item in answer.json()["items"])
