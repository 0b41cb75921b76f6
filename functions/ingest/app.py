"""Ingest queue consumer: bring each generation up to date with its provider (DESIGN.md §6.3).

Each SQS record carries one `IngestMessage`. Records are reported as partial batch failures, so a record
whose body does not parse, or whose ingest raises a retryable problem, is retried (then dead-lettered) on
its own while its neighbours leave the queue.
"""

from __future__ import annotations

from typing import Any, cast

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from kling_pipeline.messages import SqsRecord
from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.services.ingest import IngestMessage, ingest

IngestRecord = SqsRecord[IngestMessage]


# Powertools types `model` as its parser's SqsRecordModel; it only calls `model_validate` on it.
processor = BatchProcessor(event_type=EventType.SQS, model=cast("type[Any]", IngestRecord))


@tracer.capture_method(capture_response=False)
def record_handler(record: IngestRecord) -> None:
    logger.set_correlation_id(record.body.generation_id)
    ingest(record.body)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
