"""Admission control rides along the generation's own writes (moto for AWS, respx for Kling): uncontended,
the create's write takes the provider slot and the final write frees it, with no call of their own. A
condition refused — someone waits, the slot is taken, the account is backed off, the lease ran out — costs
one more write and takes the way that reads first: never a slot too many, never a waiting generation
overtaken, never a freed slot without a nudge to whoever waits."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import cast

import boto3
import httpx
import pytest
import respx

from kling_local.mp4gen import make_mp4
from kling_pipeline.caches import reset_caches
from kling_pipeline.domain.generation import Generation
from kling_pipeline.domain.status import Status
from kling_pipeline.providers.base import Provider, ProviderName
from kling_pipeline.services import capacity
from kling_pipeline.services.generations import create_generation
from kling_pipeline.services.ingest import IngestMessage, ingest
from kling_pipeline.services.submitter import retry_submission
from kling_pipeline.store.generations import get_generation_store
from kling_pipeline.store.queue import get_queue_store
from kling_pipeline.store.slots import get_slot_store

from .conftest import PROVIDER, slot_holder, stored_generation, take_slot

BODY = {"mode": "text-to-video", "prompt": "a lighthouse at dawn"}


@pytest.fixture
def kling(
    pipeline_aws: None, respx_mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> Iterator[respx.Route]:
    """Kling takes every task (each named after the generation) and has it running until `finish`."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    reset_caches()

    def created(request: httpx.Request) -> httpx.Response:
        external = json.loads(request.content)["external_task_id"]
        task = {"task_id": f"tk-{external}", "task_status": "submitted"}
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": task})

    route = respx_mock.post(url__regex=rf"{PROVIDER}/v1/videos/.+").mock(side_effect=created)
    respx_mock.get(f"{PROVIDER}/files/v.mp4").respond(content=make_mp4(320, 240, 1.0).read_bytes())
    respx_mock.get(url__regex=rf"{PROVIDER}/v1/videos/[a-z0-9-]+/tk-.+").mock(side_effect=_finished)
    yield route


def _finished(request: httpx.Request) -> httpx.Response:
    videos = [{"id": "v", "url": f"{PROVIDER}/files/v.mp4"}]
    task = {
        "task_id": request.url.path.rsplit("/", 1)[1],
        "task_status": "succeed",
        "task_result": {"videos": videos},
    }
    return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": task})


def created_in_order(route: respx.Route) -> list[str]:
    return [json.loads(call.request.content)["external_task_id"] for call in route.calls]


def stored(generation_id: str) -> Generation:
    generation = get_generation_store().get(generation_id)
    assert generation is not None
    return generation


def submit_queue_bodies() -> list[str]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="submit")["QueueUrl"]
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"])["generation_id"] for message in found]


def waiting_generation(generation_id: str = "gen_waiting") -> Generation:
    """A generation of the same tenant that has been waiting in line (first come, first served)."""
    waiting = stored_generation(generation_id, status=Status.QUEUED).model_copy(
        update={"provider": None, "provider_task_id": None}
    )
    get_generation_store().create(waiting)
    capacity.enqueue(waiting, "kling")
    return waiting


def test_an_uncontended_create_takes_its_slot_in_its_own_write(
    kling: respx.Route, calls: Counter[str]
) -> None:
    generation = create_generation(BODY, tenant_id="tenant-a")
    made = Counter(calls)
    assert generation.status is Status.SUBMITTED
    assert slot_holder(0) == generation.id and stored(generation.id).slot == 0
    # One transaction (the generation, its budget reservation, its slot), one write of the submitted task:
    # no read of the queue or of the account's slots, no write of a slot of its own.
    assert made["TransactWriteItems"] == 1 and made["UpdateItem"] == 1
    assert not any(made[operation] for operation in ("Query", "GetItem", "PutItem"))


def test_a_create_lines_up_behind_a_generation_that_waits(kling: respx.Route, calls: Counter[str]) -> None:
    waiting = waiting_generation()
    calls.clear()
    generation = create_generation(BODY, tenant_id="tenant-a")
    # Its write was refused for the waiting one (one more transaction), so it lined up behind it.
    assert calls["TransactWriteItems"] >= 2
    assert created_in_order(kling) == [waiting.id, generation.id]
    assert stored(waiting.id).status is Status.SUBMITTED and stored(generation.id).status is Status.SUBMITTED
    assert get_queue_store().waiting() == 0


def test_a_slot_taken_elsewhere_refuses_the_create_write_and_the_create_takes_another(
    kling: respx.Route,
) -> None:
    take_slot("gen_elsewhere")  # another Lambda's create, unseen by this process
    generation = create_generation(BODY, tenant_id="tenant-a")
    assert generation.status is Status.SUBMITTED
    assert slot_holder(0) == "gen_elsewhere" and slot_holder(1) == generation.id
    assert stored(generation.id).slot == 1


def test_a_backed_off_account_refuses_the_create_write_and_no_task_is_created(kling: respx.Route) -> None:
    store = get_slot_store()
    store.throttled(store.view("kling", "default", 5), base_backoff_s=300)  # another Lambda met a 1303
    generation = create_generation(BODY, tenant_id="tenant-a")
    assert generation.status is Status.QUEUED
    assert not kling.called and slot_holder(0) is None


def test_the_final_write_frees_the_slot_and_the_safety_net_writes_nothing(
    kling: respx.Route, calls: Counter[str]
) -> None:
    generation = create_generation(BODY, tenant_id="tenant-a")
    calls.clear()
    done = ingest(IngestMessage(generation_id=generation.id, reason="callback:kling"))
    made = Counter(calls)
    assert done is not None and done.status is Status.SUCCEEDED
    assert slot_holder(0) is None and stored(generation.id).slot_released
    # The slot was freed inside the final transaction: no slot write of its own, no queue read.
    assert made["TransactWriteItems"] == 1
    assert not any(made[operation] for operation in ("Query", "PutItem", "DeleteItem")), made
    calls.clear()
    retry_submission(capacity.SubmitMessage(generation_id=generation.id))  # the safety net comes due
    assert set(calls) <= {"GetItem"}


def test_a_final_write_while_someone_waits_frees_the_slot_and_nudges_the_queue(kling: respx.Route) -> None:
    generation = create_generation(BODY, tenant_id="tenant-a")
    waiting_generation()  # lined up while every slot was taken (as far as it knew)
    done = ingest(IngestMessage(generation_id=generation.id, reason="callback:kling"))
    assert done is not None and done.status is Status.SUCCEEDED
    assert slot_holder(0) is None and stored(generation.id).slot_released
    assert capacity.REFILL in submit_queue_bodies()


def test_a_final_write_leaves_alone_a_slot_someone_took_after_its_lease_ran_out(kling: respx.Route) -> None:
    generation = create_generation(BODY, tenant_id="tenant-a")
    slots = get_slot_store()
    table = boto3.resource("dynamodb").Table("generations")
    table.update_item(  # its lease ran out and another generation took the slot
        Key={"pk": slots.partition("kling", "default"), "sk": "SLOT#000"},
        UpdateExpression="SET holder = :other",
        ExpressionAttributeValues={":other": "gen_other"},
    )
    done = ingest(IngestMessage(generation_id=generation.id, reason="callback:kling"))
    assert done is not None and done.status is Status.SUCCEEDED
    assert slot_holder(0) == "gen_other" and not stored(generation.id).slot_released


def test_a_slot_taken_at_create_is_freed_when_the_submit_goes_to_another_provider(kling: respx.Route) -> None:
    generation = stored_generation("gen_moved", status=Status.QUEUED)
    offered = capacity.offer(generation, "kling")
    assert offered is not None and offered.index == 0
    take_slot(generation.id)  # the create's write took it
    capacity.took(generation, offered)
    # The router fails over: its first choice is another provider (no account of it here).
    elsewhere = cast("Provider", SimpleNamespace(name=ProviderName.EVOLINK))
    assert capacity.AccountSlots(generation).take(elsewhere) is None
    assert slot_holder(0) is None


def test_once_someone_was_seen_waiting_a_slot_is_freed_before_the_download(
    kling: respx.Route, respx_mock: respx.MockRouter
) -> None:
    first = create_generation(BODY, tenant_id="tenant-a")
    waiting_generation()
    ingest(IngestMessage(generation_id=first.id, reason="callback:kling"))  # its final write met the wait
    second = create_generation(BODY, tenant_id="tenant-a")  # lines up behind the waiting one, then starts
    slot = stored(second.id).slot
    assert slot is not None
    holders_at_download: list[str | None] = []

    def download(request: httpx.Request) -> httpx.Response:
        holders_at_download.append(slot_holder(slot))
        return httpx.Response(200, content=make_mp4(320, 240, 1.0).read_bytes())

    respx_mock.get(f"{PROVIDER}/files/v.mp4").mock(side_effect=download)
    done = ingest(IngestMessage(generation_id=second.id, reason="callback:kling"))
    assert done is not None and done.status is Status.SUCCEEDED
    assert holders_at_download == [None]  # the next task did not wait for our download
