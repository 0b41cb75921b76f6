"""Webhook queue consumer: one end-user webhook attempt per SQS record (DESIGN.md §6.7).

`deliver` records the attempt and queues the next one itself, so a record only fails (and comes back
from SQS) when the bookkeeping fails; a record that does not parse is retried on its own and then
dead-lettered by the queue's redrive policy, never failing its neighbours.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kling_pipeline.batch import BatchResponse, process_sqs_batch
from kling_pipeline.messages import SqsRecord
from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.services.webhooks import DeliveryMessage, deliver

DeliveryRecord = SqsRecord[DeliveryMessage]


@tracer.capture_method(capture_response=False)
def record_handler(record: DeliveryRecord, lambda_context: LambdaContext | None = None) -> None:
    logger.set_correlation_id(record.body.generation_id)
    time_left_ms = lambda_context.get_remaining_time_in_millis() if lambda_context is not None else None
    deliver(record.body, time_left_ms=time_left_ms)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> BatchResponse:
    return process_sqs_batch(event, DeliveryRecord, lambda record: record_handler(record, context))
