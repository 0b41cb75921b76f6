"""The real fallback state machine gives up on a poller that keeps failing (FallbackMaxPollErrors).

Its own local stack from template.yaml, with no provider credentials: a generation already submitted to
Kling then makes every poll raise ("kling account (first) is not configured", as after an operator removed
its keys). Before the limit the execution looped on that error for ever, silently; now the
generation ends `failed` (poll_failed), announced like any other, and the execution fails — which is what
FallbackExecutionsFailedAlarm counts (AWS/States ExecutionsFailed of this state machine).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from kling_local.stack.runner import LocalStack
from kling_pipeline import messaging
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.domain.request import parse_generation_request
from kling_pipeline.domain.status import Status
from kling_pipeline.store.generations import get_generation_store
from tests.integration.waiting import wait_for

pytestmark = pytest.mark.integration

POLL_ERROR_LIMIT = 2


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(
        api_port=0,
        aws_port=0,
        simulator=False,  # no provider is configured at all
        env_overrides={"FALLBACK_FIRST_POLL_S": "1"},
        parameter_overrides={"FallbackMaxPollErrors": str(POLL_ERROR_LIMIT)},
    ) as running:
        yield running


def _submitted_to_kling(generation_id: str) -> Generation:
    now = utcnow()
    generation = Generation(
        id=generation_id,
        tenant_id="tenant-a",
        status=Status.PROCESSING,
        mode="text-to-video",
        model="kling-o3",
        provider="kling",
        provider_task_id="tk_gone",
        created_at=now,
        updated_at=now,
        request=parse_generation_request({"mode": "text-to-video", "prompt": "a lighthouse at dusk"}),
        deadline_at=now + timedelta(hours=1),
    )
    get_generation_store().create(generation)
    return generation


def _execution(stack: LocalStack, generation_id: str) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    assert stack.resources is not None
    arn = stack.resources.state_machines["FallbackStateMachine"]
    execution_arn = arn.replace(":stateMachine:", ":execution:") + f":{generation_id}"
    return dict(sfn.describe_execution(executionArn=execution_arn))


def test_a_poller_that_always_fails_ends_the_generation_failed_and_fails_the_execution(
    stack: LocalStack,
) -> None:
    generation = _submitted_to_kling("gen_pollfails0001")
    messaging.start_fallback(generation.id, first_wait_s=1)

    execution = wait_for(
        lambda: (e := _execution(stack, generation.id))["status"] != "RUNNING" and e, timeout=60, every=0.5
    )
    assert execution["status"] == "FAILED"
    assert execution.get("error") == "PollErrorLimit"
    assert f"failed {POLL_ERROR_LIMIT} times in a row" in execution.get("cause", "")

    stored = get_generation_store().get(generation.id)
    assert stored is not None
    assert stored.status is Status.FAILED
    assert stored.error is not None and stored.error.code == "poll_failed"

    history = stack.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in history["events"] if "stateEnteredEventDetails" in e
    ]
    assert entered.count("Poll") == POLL_ERROR_LIMIT, entered
    assert entered[-1] == "GaveUp", entered
    failures = [e for e in history["events"] if e["type"] == "TaskFailed"]
    assert failures and "is not configured" in json.dumps(failures[0]["taskFailedEventDetails"])
