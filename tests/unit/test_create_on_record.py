"""A create sent to a provider where our task cannot be looked up by our id (EvoLink) is on record before
it goes (moto for AWS, respx for EvoLink): if the sender dies before the answer is written, the next look
waits for the task's callback instead of sending a second, paid one; a refusal that proves no task was
made voids the record."""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest
import respx

from kling_pipeline.caches import reset_caches
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation
from kling_pipeline.domain.status import Status
from kling_pipeline.messages import SubmitMessage
from kling_pipeline.services import generations, unconfirmed
from kling_pipeline.services.generations import create_generation
from kling_pipeline.services.submitter import retry_submission
from kling_pipeline.store.generations import get_generation_store

EVOLINK = "http://127.0.0.1:8"
BODY = {"mode": "text-to-video", "prompt": "a lighthouse at dawn", "provider": "evolink"}


class Killed(BaseException):
    """The Lambda's process ends here: nothing after it runs, nothing catches it."""


@pytest.fixture
def evolink(
    pipeline_aws: None, respx_mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> Iterator[respx.Route]:
    for name, value in {
        "EVOLINK_API_BASE_URL": EVOLINK,
        "EVOLINK_API_KEY": "evo",
        "PUBLIC_BASE_URL": "https://api.example.com/prod",
        "CALLBACK_SIGNING_SECRET": "a-test-signing-secret",
        "SUBMIT_LEASE_S": "1",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    task = {"id": "task-unified-1", "object": "video.generation.task", "status": "pending", "progress": 0}
    yield respx_mock.post(f"{EVOLINK}/v1/videos/generations").respond(json=task)


def stored(generation_id: str) -> Generation:
    generation = get_generation_store().get(generation_id)
    assert generation is not None
    return generation


def only_generation_id() -> str:
    (generation,) = (
        get_generation_store().list_for_tenant("tenant-a", status=None, limit=5, cursor=None).items
    )
    return generation.id


def test_a_sender_killed_after_an_evolink_create_leaves_a_generation_that_waits_for_its_callback(
    evolink: respx.Route, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*args: object, **kwargs: object) -> Generation:
        raise Killed

    monkeypatch.setattr(generations, "_record_submitted", killed)  # EvoLink answered; the process died
    with pytest.raises(Killed):
        create_generation(BODY, tenant_id="tenant-a")
    monkeypatch.undo()
    generation_id = only_generation_id()
    left = stored(generation_id)
    assert (left.status, left.unconfirmed_provider, left.account) == (Status.QUEUED, "evolink", "default")
    time.sleep(1.1)  # the create's submit lease runs out
    retry_submission(SubmitMessage(generation_id=generation_id))  # its safety net comes due
    waiting = stored(generation_id)
    assert evolink.call_count == 1  # never sent again
    assert waiting.status is Status.SUBMITTED and waiting.provider_task_id is None
    assert waiting.unconfirmed_provider == "evolink"  # the callback naming the task is adopted (ingest)


def test_a_task_its_callback_names_while_the_generation_is_still_queued_is_watched(
    evolink: respx.Route, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*args: object, **kwargs: object) -> Generation:
        raise Killed

    monkeypatch.setattr(generations, "_record_submitted", killed)
    with pytest.raises(Killed):
        create_generation(BODY, tenant_id="tenant-a")
    monkeypatch.undo()
    generation_id = only_generation_id()
    # The task's callback comes before anyone looked again: ingest adopts the task it names.
    assert unconfirmed.adopt(stored(generation_id), "evolink", "task-unified-1") is not None
    time.sleep(1.1)
    retry_submission(SubmitMessage(generation_id=generation_id))
    watched = stored(generation_id)
    assert evolink.call_count == 1
    assert (watched.status, watched.provider_task_id) == (Status.SUBMITTED, "task-unified-1")
    machine = str(get_settings().state_machine_arn)
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
    assert [execution["name"] for execution in executions] == [generation_id]  # polled to its outcome


def test_an_answered_create_clears_its_record_and_a_refusal_voids_it(
    evolink: respx.Route, respx_mock: respx.MockRouter
) -> None:
    submitted = create_generation(BODY, tenant_id="tenant-a")
    assert submitted.status is Status.SUBMITTED and submitted.provider_task_id == "task-unified-1"
    assert stored(submitted.id).unconfirmed_provider is None
    respx_mock.post(f"{EVOLINK}/v1/videos/generations").respond(
        429, json={"error": {"code": "rate_limited", "message": "slow down", "type": "rate_limit"}}
    )
    refused = create_generation(BODY, tenant_id="tenant-a")
    assert refused.status is Status.QUEUED
    assert stored(refused.id).unconfirmed_provider is None  # a 429 proves no task: the next try sends again
