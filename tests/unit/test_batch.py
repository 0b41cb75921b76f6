"""The SQS consumers' partial batch failures (kling_pipeline.batch) answer exactly as Powertools' batch
processor they replace: the same `batchItemFailures`, the same exceptions, every record handled once."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError, UnexpectedBatchTypeError
from pydantic import BaseModel

from kling_pipeline.batch import process_sqs_batch
from kling_pipeline.messages import SqsRecord, SqsTextRecord


class Job(BaseModel):
    name: str


JobRecord = SqsRecord[Job]


def record(message_id: str, body: Any) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": text,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs",
        "awsRegion": "us-east-1",
    }


def ours(event: dict[str, Any]) -> tuple[Any, list[str]]:
    handled: list[str] = []

    def handle(record: JobRecord) -> None:  # Powertools passes it by this name
        handled.append(record.body.name)
        if record.body.name.startswith("fail"):
            raise RuntimeError(f"{record.body.name} failed")

    try:
        return process_sqs_batch(event, JobRecord, handle), handled
    except Exception as exc:
        return type(exc), handled


def powertools(event: dict[str, Any]) -> tuple[Any, list[str]]:
    handled: list[str] = []

    def handle(record: JobRecord) -> None:  # Powertools passes it by this name
        handled.append(record.body.name)
        if record.body.name.startswith("fail"):
            raise RuntimeError(f"{record.body.name} failed")

    processor = BatchProcessor(event_type=EventType.SQS, model=cast("type[Any]", JobRecord))
    try:
        return process_partial_response(event=event, record_handler=handle, processor=processor), handled
    except Exception as exc:
        return type(exc), handled


BATCHES = {
    "all succeed": [record("m1", {"name": "a"}), record("m2", {"name": "b"})],
    "one raises": [
        record("m1", {"name": "a"}),
        record("m2", {"name": "fail-b"}),
        record("m3", {"name": "c"}),
    ],
    "one does not parse": [record("m1", "not json"), record("m2", {"name": "b"})],
    "one is the wrong shape": [record("m1", {"name": "a"}), record("m2", {"other": 1})],
    "all fail": [record("m1", {"name": "fail-a"}), record("m2", "{")],
    "a single failing record": [record("m1", {"name": "fail-a"})],
}


@pytest.mark.parametrize("batch", BATCHES.values(), ids=list(BATCHES))
def test_every_batch_is_answered_as_powertools_answers_it(batch: list[dict[str, Any]]) -> None:
    # Given an SQS batch, When our processor and Powertools' handle it with the same record handler
    # Then both answer the same (or raise the same), having handled the same records in the same order
    assert ours({"Records": batch}) == powertools({"Records": batch})


def test_failed_records_are_reported_by_message_id_and_their_neighbours_are_handled() -> None:
    batch = BATCHES["one raises"] + [record("m4", "garbage")]
    response, handled = ours({"Records": batch})
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m4"}]}
    assert handled == ["a", "fail-b", "c"]


def test_a_batch_whose_every_record_failed_raises_so_lambda_retries_it_whole() -> None:
    def handle(record: JobRecord) -> None:
        raise RuntimeError("down")

    with pytest.raises(BatchProcessingError) as raised:
        process_sqs_batch({"Records": BATCHES["all fail"]}, JobRecord, handle)
    assert len(raised.value.child_exceptions) == 2  # both records' errors, for the log


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": "m1"}])
def test_an_event_without_records_is_refused(event: dict[str, Any]) -> None:
    with pytest.raises(UnexpectedBatchTypeError):
        process_sqs_batch(event, JobRecord, lambda job: None)


def test_a_text_record_keeps_the_body_as_sent_and_its_queue() -> None:
    seen: list[tuple[str, str, str]] = []
    raw = record("m1", '{"Records": []}')
    response = process_sqs_batch(
        {"Records": [raw]},
        SqsTextRecord,
        lambda r: seen.append((r.messageId, r.body, r.eventSourceARN)),
    )
    assert response == {"batchItemFailures": []}
    assert seen == [("m1", '{"Records": []}', "arn:aws:sqs:us-east-1:123456789012:jobs")]
