"""Asynchronous hand-offs: SQS queues, EventBridge events and fallback executions.

Kept apart from the stores so services read as the flow in DESIGN.md §6 and tests can point every
client at the local stack.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from kling_pipeline import aws
from kling_pipeline.config import get_settings
from kling_pipeline.observability import logger

EVENT_SOURCE = "kling-pipeline"
MAX_SQS_DELAY_S = 900


class EventsNotDelivered(Exception):
    """EventBridge kept rejecting entries; raised so the caller's message is retried."""


def send(queue_url: str | None, message: BaseModel, *, delay_s: int = 0) -> None:
    if not queue_url:
        raise RuntimeError("queue URL is not configured")
    aws.sqs().send_message(
        QueueUrl=queue_url,
        MessageBody=message.model_dump_json(),
        DelaySeconds=max(0, min(int(delay_s), MAX_SQS_DELAY_S)),
    )


def publish(detail_type: str, detail: dict[str, Any]) -> None:
    """Put one event on the stack's bus; a partial `PutEvents` failure is retried, then raised."""
    _retrying()(_put_event, detail_type, detail)


@cache
def _retrying() -> Any:
    """tenacity, imported on the first publish (the callback handler only sends, it never publishes)."""
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

    return Retrying(
        retry=retry_if_exception_type(EventsNotDelivered),
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=0.2, max=3) + wait_random(0, 0.2),
        reraise=True,
    )


def _put_event(detail_type: str, detail: dict[str, Any]) -> None:
    response = aws.events().put_events(
        Entries=[
            {
                "Source": EVENT_SOURCE,
                "DetailType": detail_type,
                "Detail": json.dumps(detail, default=str),
                "EventBusName": get_settings().event_bus_name,
            }
        ]
    )
    if response.get("FailedEntryCount", 0):
        codes = [entry.get("ErrorCode") for entry in response.get("Entries", []) if entry.get("ErrorCode")]
        raise EventsNotDelivered(f"EventBridge rejected {detail_type}: {codes}")


def start_fallback(generation_id: str, *, first_wait_s: int) -> None:
    """Start the polling fallback; named by the generation so a retried submit can't start two."""
    arn = get_settings().state_machine_arn
    if not arn:
        raise RuntimeError("STATE_MACHINE_ARN is not configured")
    payload = {"generation_id": generation_id, "wait_s": first_wait_s, "done": False}
    try:
        aws.stepfunctions().start_execution(
            stateMachineArn=arn, name=generation_id, input=json.dumps(payload)
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        logger.info("fallback already running", extra={"generation_id": generation_id})


def stop_fallback(generation_id: str) -> None:
    arn = get_settings().state_machine_arn
    if not arn:
        return
    execution_arn = arn.replace(":stateMachine:", ":execution:") + f":{generation_id}"
    try:
        aws.stepfunctions().stop_execution(executionArn=execution_arn, cause="generation canceled")
    except ClientError as exc:
        logger.info("fallback not stopped", extra={"generation_id": generation_id, "reason": str(exc)})
