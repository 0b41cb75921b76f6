"""Admission control and the fair queue through the local stack: the simulator counts what really ran
on each provider account."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from kling_local.stack.runner import LocalStack
from kling_pipeline.store.slots import get_slot_store
from tests.integration.capacity.conftest import SLOTS, TASK_S
from tests.integration.waiting import wait_for

pytestmark = pytest.mark.integration

TERMINAL = {"succeeded", "failed", "canceled"}


def create(api: httpx.Client, prompt: str) -> dict[str, Any]:
    answer = api.post("/v1/generations", json={"mode": "text-to-video", "prompt": prompt, "duration": 3})
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


def wait_all_terminal(api: httpx.Client, ids: list[str], timeout: float = 90) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        bodies = [api.get(f"/v1/generations/{gid}").json() for gid in ids]
        return bodies if all(body["status"] in TERMINAL for body in bodies) else None

    result: list[dict[str, Any]] = wait_for(done, timeout=timeout, every=0.5)
    return result


def test_a_burst_never_exceeds_any_accounts_limit_and_uses_both(api: httpx.Client, sim: Any) -> None:
    ids = [create(api, f"burst {n}")["id"] for n in range(12)]
    finished = wait_all_terminal(api, ids)
    assert {body["status"] for body in finished} == {"succeeded"}
    assert {body["account"] for body in finished} == {"a", "b"}
    accounts = sim.stats()["accounts"]
    assert accounts["kling/a"]["max_in_flight"] <= SLOTS and accounts["kling/b"]["max_in_flight"] <= SLOTS
    assert accounts["kling/a"]["throttled"] == 0 and accounts["kling/b"]["throttled"] == 0  # never a 1303
    assert accounts["kling/a"]["tasks_created"] + accounts["kling/b"]["tasks_created"] == 12


def test_a_queued_generation_shows_its_position_falling_and_an_estimated_start(
    api: httpx.Client, sim: Any
) -> None:
    ids = [create(api, f"line {n}")["id"] for n in range(9)]
    last = ids[-1]
    positions: list[int] = []

    def started() -> bool:
        body = api.get(f"/v1/generations/{last}").json()
        if body["status"] != "queued":
            return True
        assert body["estimated_start_at"] is not None
        positions.append(body["queue_position"])
        return False

    wait_for(started, timeout=60, every=0.3)
    assert positions and positions[0] >= 2
    assert positions == sorted(positions, reverse=True) and positions[-1] < positions[0]
    wait_all_terminal(api, ids)


def test_a_late_tenants_single_request_does_not_wait_behind_a_batch(
    api: httpx.Client, api_b: httpx.Client, sim: Any
) -> None:
    batch = [create(api, f"batch {n}")["id"] for n in range(14)]
    sent = time.time()
    single = create(api_b, "just one")["id"]
    wait_all_terminal(api, batch)
    wait_all_terminal(api_b, [single])
    started = {task["external_task_id"]: task["created_at"] for task in sim.tasks("kling")}
    # Once queued, the single request takes the next free slot: no more of the batch starts before it
    # than refills already under way when it arrived.
    overtaken = [gid for gid in batch if sent < started[gid] < started[single]]
    assert len(overtaken) <= 2, overtaken
    assert started[single] - sent <= 2 * TASK_S + 1  # a slot frees within one task time
    assert sum(1 for gid in batch if started[gid] > started[single]) >= 4  # the batch was still waiting


def test_a_slot_left_by_a_crashed_holder_comes_back_by_its_lease(
    api: httpx.Client, sim: Any, stack: LocalStack
) -> None:
    slots = get_slot_store()
    for account in ("a", "b"):
        for n in range(SLOTS):
            view = slots.view("kling", account, SLOTS)
            assert slots.acquire(view, f"gen_crashed_{account}{n}", lease_s=3) is not None
    queued = create(api, "after the crash")
    assert queued["status"] == "queued" and queued["queue_position"] == 1
    done = wait_all_terminal(api, [queued["id"]], timeout=60)
    assert done[0]["status"] == "succeeded"


def test_an_account_that_throttles_anyway_is_backed_off(api: httpx.Client, sim: Any) -> None:
    sim.configure(concurrency_limit={"kling/a": 1})  # shared with someone else: really takes one task
    ids = [create(api, f"shared {n}")["id"] for n in range(8)]
    finished = wait_all_terminal(api, ids)
    assert {body["status"] for body in finished} == {"succeeded"}
    accounts = sim.stats()["accounts"]
    assert accounts["kling/a"]["max_in_flight"] <= 1
    assert 1 <= accounts["kling/a"]["throttled"] <= 3  # learned, not hammered
    capacity = api.get("/v1/capacity").json()
    row = next(r for r in capacity["providers"][0]["accounts"] if r["name"] == "a")
    assert row["effective_limit"] < SLOTS or row["backed_off_until"] is not None


def test_capacity_shows_limits_in_flight_and_queued_without_secrets(api: httpx.Client, sim: Any) -> None:
    ids = [create(api, f"busy {n}")["id"] for n in range(6)]
    answer = api.get("/v1/capacity")
    assert answer.status_code == 200
    body = answer.json()
    kling = body["providers"][0]
    assert kling["provider"] == "kling"
    assert [(a["name"], a["concurrency"]) for a in kling["accounts"]] == [("a", SLOTS), ("b", SLOTS)]
    assert 0 < kling["in_flight"] <= 2 * SLOTS and body["queued"] >= 0
    assert "ak-a" not in answer.text and "sk-a" not in answer.text
    wait_all_terminal(api, ids)
    time.sleep(TASK_S / 2)
