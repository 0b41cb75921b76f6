"""Idempotency keys and cancel, through the local stack against the simulator."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx
import pytest

from kling_local.stack.runner import LocalStack
from kling_pipeline.config import get_settings
from tests.integration.waiting import wait_for

from .conftest import wait_terminal

pytestmark = pytest.mark.integration

BODY = {"mode": "text-to-video", "prompt": "A paper boat on a stream", "duration": 3, "provider": "kling"}


def creates_for(sim: Any, generation_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in sim.requests()
        if r["method"] == "POST" and (r.get("json") or {}).get("external_task_id") == generation_id
    ]


def creates_with_prompt(sim: Any, prompt: str) -> list[dict[str, Any]]:
    return [
        r for r in sim.requests() if r["method"] == "POST" and (r.get("json") or {}).get("prompt") == prompt
    ]


def test_same_key_and_body_returns_the_first_response_and_submits_once(sim: Any, api: httpx.Client) -> None:
    body = {**BODY, "prompt": "Idempotent boat"}
    first = api.post("/v1/generations", json=body, headers={"Idempotency-Key": "order-1"})
    again = api.post("/v1/generations", json=body, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(creates_for(sim, first.json()["id"])) == 1
    with_a_new_key = api.post("/v1/generations", json=body, headers={"Idempotency-Key": "order-2"})
    assert with_a_new_key.json()["id"] != first.json()["id"]
    assert len(creates_with_prompt(sim, "Idempotent boat")) == 2


def test_same_key_with_another_body_is_a_conflict(sim: Any, api: httpx.Client) -> None:
    api.post("/v1/generations", json={**BODY, "prompt": "First body"}, headers={"Idempotency-Key": "order-3"})
    clash = api.post(
        "/v1/generations", json={**BODY, "prompt": "Second body"}, headers={"Idempotency-Key": "order-3"}
    )
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "conflict"
    assert "Idempotency-Key" in clash.json()["error"]["message"]
    assert creates_with_prompt(sim, "Second body") == []


def test_a_replay_while_the_first_request_is_in_flight_waits_for_its_response(
    sim: Any, api: httpx.Client
) -> None:
    # Given a provider whose first create answer is lost, so the first request takes a while
    sim.config = sim.config.model_copy(update={"create_lost_response_count": 1})
    body = {**BODY, "prompt": "In flight"}

    def post(delay: float) -> httpx.Response:
        time.sleep(delay)
        return api.post("/v1/generations", json=body, headers={"Idempotency-Key": "order-4"})

    # When the same request is sent again while the first is still running
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(post, (0.0, 0.3))

    # Then both get the same generation, and the provider saw a single create
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json()["id"] == second.json()["id"]
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(creates_with_prompt(sim, "In flight")) == 1


def test_cancel_before_submit_never_reaches_the_provider(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    # Given a provider that is at capacity, so the generation waits in the queue
    sim.config = sim.config.model_copy(update={"error_429_rate": {"kling": 1.0}})
    created = api.post("/v1/generations", json={**BODY, "prompt": "Never sent"}).json()
    assert created["status"] == "queued"
    # When it is canceled
    canceled = api.post(f"/v1/generations/{created['id']}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    # Then, once the provider has room again and the retry comes due, nothing is submitted
    sim.config = sim.config.model_copy(update={"error_429_rate": 0.0})
    time.sleep(4)  # SUBMIT_RETRY_MAX_S is 2 in this stack
    assert [r for r in creates_with_prompt(sim, "Never sent") if r["status"] == 200] == []
    assert api.get(f"/v1/generations/{created['id']}").json()["status"] == "canceled"


def test_cancel_after_submit_cancels_at_evolink_and_no_fallback_ever_runs(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    created = api.post(
        "/v1/generations", json={**BODY, "prompt": "Endless [sim:never]", "provider": "evolink"}
    ).json()
    task_id = created["provider_task_id"]
    canceled = api.post(f"/v1/generations/{created['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    assert any(r["path"] == f"/v1/tasks/{task_id}/cancel" for r in sim.requests("evolink"))
    # The safety net comes due at the first poll time (2 s here) and finds the generation final: the
    # fallback state machine, started only for late callbacks, never runs for it.
    sfn = boto3.client("stepfunctions", endpoint_url=stack.aws_endpoint_url, region_name=stack.region)
    machine = get_settings().state_machine_arn
    time.sleep(4)
    names = [e["name"] for e in sfn.list_executions(stateMachineArn=machine, maxResults=1000)["executions"]]
    assert created["id"] not in names
    assert api.get(f"/v1/generations/{created['id']}").json()["status"] == "canceled"


def test_a_late_result_after_cancel_is_ignored_but_its_cost_is_kept(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    # Given a task at a provider without a cancel endpoint
    created = api.post("/v1/generations", json={**BODY, "prompt": "Too late"}).json()
    api.post(f"/v1/generations/{created['id']}/cancel")
    # When the provider finishes it anyway and calls back
    wait_for(
        lambda: any(
            t["state"] == "succeeded"
            for t in sim.tasks("kling")
            if t["task_id"] == created["provider_task_id"]
        )
    )
    # Then the generation stays canceled with no video, but what the provider charged is recorded
    final = wait_for(
        lambda: (
            (g := api.get(f"/v1/generations/{created['id']}").json())["actual_cost"]["basis"] == "reported"
            and g
        )
    )
    assert final["status"] == "canceled"
    assert final["outputs"] == []
    assert final["actual_cost"]["unit"] == "kling_units" and final["actual_cost"]["units"] != "0.0000"
    assert final["actual_cost"]["usd"] != "0.0000"


def test_canceling_a_finished_generation_is_a_conflict(sim: Any, api: httpx.Client) -> None:
    created = api.post("/v1/generations", json={**BODY, "prompt": "Done already"}).json()
    wait_terminal(api, created["id"])
    answer = api.post(f"/v1/generations/{created['id']}/cancel")
    assert answer.status_code == 409
    assert "already succeeded" in answer.json()["error"]["message"]
