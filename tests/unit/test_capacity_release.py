"""When an account's slot is freed (moto for AWS, respx for Kling): when the provider says the task ended,
never while a task of ours may still run there (a lost create answer, our own timeout), and never at the
cost of the work around it (a failing release does not stop an ingest's final write)."""

from __future__ import annotations

import json

import boto3
import httpx
import pytest
import respx
from botocore.exceptions import ClientError

from kling_local.mp4gen import make_mp4
from kling_pipeline.domain.generation import GenerationError
from kling_pipeline.domain.status import Status
from kling_pipeline.services import capacity
from kling_pipeline.services.generations import create_generation
from kling_pipeline.services.ingest import IngestMessage, ingest
from kling_pipeline.store.generations import get_generation_store
from kling_pipeline.store.slots import SlotStore

from .conftest import PROVIDER, held_by, stored_generation, take_slot

KLING_CREATE = f"{PROVIDER}/v1/videos/omni-video"
KLING_TASKS = rf"{PROVIDER}/v1/videos/[a-z0-9-]+"


@respx.mock(assert_all_called=False)
def test_a_lost_create_answer_keeps_the_slot_and_records_the_account(
    pipeline_aws: None, respx_mock: respx.MockRouter
) -> None:
    # Kling answers 500 each time (the task may have been made) and its lookups by our id find nothing yet.
    respx_mock.post(KLING_CREATE).mock(
        return_value=httpx.Response(500, json={"code": 5000, "message": "internal", "request_id": "r"})
    )
    respx_mock.get(url__regex=KLING_TASKS).mock(
        return_value=httpx.Response(404, json={"code": 1203, "message": "task not found", "request_id": "r"})
    )
    generation = create_generation({"mode": "text-to-video", "prompt": "x"}, tenant_id="tenant-a")
    stored = get_generation_store().get(generation.id)
    assert stored is not None and stored.status is Status.QUEUED
    # Kling can look the task up by our id: it stays with Kling, on the account the create went to, whose
    # slot stays taken (the task may be running there).
    assert (stored.unconfirmed_provider, stored.account) == ("kling", "default")
    assert held_by(generation.id)


def test_our_own_timeout_keeps_the_slot_while_the_task_may_still_run(pipeline_aws: None) -> None:
    generation = stored_generation("gen_timeout", status=Status.FAILED).model_copy(
        update={"account": "default", "error": GenerationError(code="timeout", message="deadline")}
    )
    take_slot(generation.id)
    capacity.release(generation)
    assert held_by(generation.id)  # its lease frees it
    capacity.release(generation, task_ended=True)  # the provider said it ended (or stopped it)
    assert not held_by(generation.id)


def test_a_failing_release_never_stops_an_ingests_final_write(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    generation = stored_generation().model_copy(update={"account": "default"})
    get_generation_store().create(generation)
    take_slot(generation.id)

    def throttled(*args: object, **kwargs: object) -> bool:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")

    monkeypatch.setattr(SlotStore, "release", throttled)
    video = make_mp4(320, 240, 1.0).read_bytes()
    task = {
        "task_id": "tk_1",
        "task_status": "succeed",
        "task_result": {"videos": [{"id": "v", "url": f"{PROVIDER}/files/v.mp4"}]},
    }
    with respx.mock(assert_all_called=False) as provider:
        provider.get(url__regex=rf"{KLING_TASKS}/tk_1").mock(
            return_value=httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": task})
        )
        provider.get(f"{PROVIDER}/files/v.mp4").mock(return_value=httpx.Response(200, content=video))
        result = ingest(IngestMessage(generation_id=generation.id))
    assert result is not None and result.status is Status.SUCCEEDED
    monkeypatch.undo()
    assert held_by(generation.id)  # left to its lease, or to the next look at the final generation


def submit_queue_bodies() -> list[str]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="submit")["QueueUrl"]
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [message["Body"] for message in found]


def test_a_freed_slot_nudges_the_queue_only_when_someone_waits(pipeline_aws: None) -> None:
    done = stored_generation("gen_done", status=Status.SUCCEEDED).model_copy(update={"account": "default"})
    take_slot(done.id)
    capacity.release(done, task_ended=True)
    assert not held_by(done.id) and submit_queue_bodies() == []  # nobody waits: no refill to ask for

    waiting = stored_generation("gen_waiting", status=Status.QUEUED)
    capacity.enqueue(waiting, "kling")
    other = stored_generation("gen_other", status=Status.SUCCEEDED).model_copy(update={"account": "default"})
    take_slot(other.id)
    capacity.release(other, task_ended=True)
    assert [json.loads(body)["generation_id"] for body in submit_queue_bodies()] == [capacity.REFILL]
