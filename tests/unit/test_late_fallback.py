"""The fallback state machine runs only for generations whose callback is late: a callback on time costs no
execution, a lost one is still polled to its outcome from the first poll time — also when the Lambda that
would start the execution crashes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import respx
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from functions.submitter import app as submitter_app
from kling_local.mp4gen import make_mp4
from kling_pipeline import messaging
from kling_pipeline.caches import reset_caches
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation
from kling_pipeline.domain.status import Status
from kling_pipeline.messages import SubmitMessage
from kling_pipeline.services.fallback import PollState, poll_step
from kling_pipeline.services.generations import submit
from kling_pipeline.services.ingest import IngestMessage, ingest
from kling_pipeline.store.generations import get_generation_store

from .conftest import PROVIDER, stored_generation

TASK = "tk_1"
FIRST_POLL_S = 30


@dataclass
class Context:
    """The few LambdaContext fields Powertools reads."""

    function_name: str = "submitter"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:submitter"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def published(pipeline_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A stack with a public callback endpoint; the outcome events it publishes."""
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://api.example.com/prod")
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", "a-test-signing-secret")
    monkeypatch.setenv("FALLBACK_FIRST_POLL_S", str(FIRST_POLL_S))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    reset_caches()
    events: list[str] = []
    monkeypatch.setattr(messaging, "publish", lambda kind, detail: events.append(kind))
    yield events


@pytest.fixture
def provider(respx_mock: respx.MockRouter) -> respx.Route:
    """Kling accepts the task; asking about it answers with the stored route's response (set per test)."""
    respx_mock.post(url__regex=rf"{PROVIDER}/v1/videos/.+").respond(
        json={"code": 0, "message": "SUCCEED", "data": {"task_id": TASK, "task_status": "submitted"}}
    )
    respx_mock.get(f"{PROVIDER}/files/v.mp4").respond(content=make_mp4(320, 240, 1.0).read_bytes())
    return respx_mock.get(url__regex=rf"{PROVIDER}/v1/videos/[a-z0-9-]+/{TASK}").respond(
        json={"code": 0, "message": "SUCCEED", "data": {"task_id": TASK, "task_status": "processing"}}
    )


def finished(route: respx.Route) -> None:
    videos = [{"id": "v", "url": f"{PROVIDER}/files/v.mp4"}]
    task = {"task_id": TASK, "task_status": "succeed", "task_result": {"videos": videos}}
    route.respond(json={"code": 0, "message": "SUCCEED", "data": task})


def submitted_generation() -> Generation:
    queued = stored_generation(status=Status.QUEUED).model_copy(
        update={"provider": None, "provider_task_id": None}
    )
    get_generation_store().create(queued)
    generation = submit(queued)
    assert generation.status is Status.SUBMITTED
    return generation


def executions() -> list[dict[str, Any]]:
    machine = str(get_settings().state_machine_arn)
    return list(boto3.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"])


def safety_net_event(generation_id: str) -> dict[str, Any]:
    record = {
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": json.dumps({"generation_id": generation_id}),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "0",
            "SenderId": "x",
            "ApproximateFirstReceiveTimestamp": "0",
        },
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:submit",
        "awsRegion": "us-east-1",
    }
    return {"Records": [record]}


def test_a_callback_on_time_finishes_the_generation_without_a_state_machine(
    published: list[str], provider: respx.Route
) -> None:
    # Given a generation submitted to a provider that calls back
    generation = submitted_generation()
    assert executions() == []
    # When its callback comes and ingest finds the video ready
    finished(provider)
    done = ingest(IngestMessage(generation_id=generation.id, reason="callback:kling"))
    assert done is not None and done.status is Status.SUCCEEDED
    # And the safety net comes due at the first poll time
    answer = submitter_app.lambda_handler(safety_net_event(generation.id), Context())  # type: ignore[arg-type]
    # Then no execution was ever started, and the outcome was announced once
    assert answer == {"batchItemFailures": []}
    assert executions() == []
    assert published == ["Generation Succeeded"]


def test_the_safety_net_is_due_at_the_first_poll_time(published: list[str], provider: respx.Route) -> None:
    queue = str(get_settings().submit_queue_url)
    sent: list[dict[str, Any]] = []
    original = messaging.send

    def recording(queue_url: str | None, message: Any, *, delay_s: int = 0) -> None:
        sent.append({"queue": queue_url, "delay_s": delay_s})
        original(queue_url, message, delay_s=delay_s)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(messaging, "send", recording)
        from kling_pipeline.services.generations import create_generation

        created = create_generation(
            {"mode": "text-to-video", "prompt": "x", "provider": "kling"}, tenant_id="t"
        )
    assert created.status is Status.SUBMITTED
    assert sent == [{"queue": queue, "delay_s": FIRST_POLL_S}]
    assert executions() == []


def test_a_lost_callback_is_polled_to_success_even_if_the_lambda_starting_the_fallback_crashes(
    published: list[str], provider: respx.Route, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a submitted generation whose callback never comes
    generation = submitted_generation()
    start = messaging.start_fallback
    crashes = [RuntimeError("the submitter Lambda died before StartExecution returned")]

    def crashing(generation_id: str, *, first_wait_s: int) -> None:
        if crashes:
            raise crashes.pop()
        start(generation_id, first_wait_s=first_wait_s)

    monkeypatch.setattr(messaging, "start_fallback", crashing)
    # When the safety net comes due and the Lambda handling it crashes, the invocation fails: nothing is
    # deleted, the message stays on the queue
    event = safety_net_event(generation.id)
    with pytest.raises(BatchProcessingError):
        submitter_app.lambda_handler(event, Context())  # type: ignore[arg-type]
    assert executions() == []
    # And SQS hands it over again (twice, even: a redelivery after the start is harmless)
    for _ in range(2):
        again = submitter_app.lambda_handler(event, Context())  # type: ignore[arg-type]
        assert again == {"batchItemFailures": []}
    [execution] = executions()
    assert execution["name"] == generation.id
    started = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    state = PollState.model_validate_json(started["input"])
    # (what is left of the first poll wait: the message came early here, straight after the submit)
    assert state.generation_id == generation.id and 1 <= state.wait_s <= FIRST_POLL_S

    # Then the fallback's polls (what the state machine runs) find the task done and store it, once
    state = poll_step(state)
    assert not state.done and state.wait_s >= FIRST_POLL_S  # still running: the usual schedule
    finished(provider)
    assert poll_step(state).done
    final = get_generation_store().get(generation.id)
    assert final is not None and final.status is Status.SUCCEEDED and final.announced
    assert published == ["Generation Succeeded"]
    # And a late callback or another poll changes nothing
    assert ingest(IngestMessage(generation_id=generation.id)) is not None
    assert poll_step(state).done
    assert published == ["Generation Succeeded"]


@pytest.mark.parametrize(
    ("body", "handed_to_ingest"),
    [
        (b'{"task_id": "tk_1", "task_status": "processing"}', False),
        (b'{"code": 0, "data": {"task_id": "tk_1", "task_status": "submitted"}}', False),
        (b'{"task_id": "tk_1", "task_status": "succeed"}', True),
        (b'{"task_id": "tk_1", "task_status": "failed"}', True),
        (b"not json", True),
    ],
)
def test_a_callback_that_only_reports_progress_is_kept_but_not_ingested(
    published: list[str], monkeypatch: pytest.MonkeyPatch, body: bytes, handed_to_ingest: bool
) -> None:
    from kling_pipeline.services.callbacks import accept_callback
    from kling_pipeline.services.tokens import callback_token

    queue = boto3.client("sqs").create_queue(QueueName="ingest")["QueueUrl"]
    monkeypatch.setenv("INGEST_QUEUE_URL", queue)
    reset_caches()
    get_generation_store().create(stored_generation(status=Status.SUBMITTED))

    accept_callback("kling", "gen_test", callback_token("gen_test", "kling"), body)

    receipts = (
        boto3.resource("dynamodb")
        .Table("generations")
        .query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :cb)",
            ExpressionAttributeValues={":pk": "GEN#gen_test", ":cb": "CALLBACK#"},
        )["Items"]
    )
    assert len(receipts) == 1
    messages = boto3.client("sqs").receive_message(QueueUrl=queue).get("Messages", [])
    assert len(messages) == (1 if handed_to_ingest else 0)


def test_an_announcement_a_crash_left_claimed_is_retried_by_the_safety_net_until_it_is_out(
    published: list[str],
) -> None:
    from datetime import timedelta

    from kling_pipeline.domain.generation import utcnow
    from kling_pipeline.services.lifecycle import AnnouncementPending
    from kling_pipeline.services.submitter import retry_submission

    # Given a failed generation whose announcer crashed after claiming the event, before publishing it
    claimed = stored_generation(status=Status.FAILED).model_copy(
        update={"announce_claimed_until": utcnow() + timedelta(seconds=60)}
    )
    get_generation_store().create(claimed)
    # When the safety net comes due while the claim still runs, it fails (and SQS brings it back later)
    with pytest.raises(AnnouncementPending):
        retry_submission(SubmitMessage(generation_id="gen_test"))
    assert published == []
    # Then, once the claim has run out, the next delivery announces the outcome, once
    store = get_generation_store()
    store.update(
        "gen_test", lambda g: g.model_copy(update={"announce_claimed_until": utcnow() - timedelta(1)})
    )
    retry_submission(SubmitMessage(generation_id="gen_test"))
    retry_submission(SubmitMessage(generation_id="gen_test"))
    assert published == ["Generation Failed"]
