"""Ingest queue consumer: bring each generation up to date with its provider (DESIGN.md §6.3).

Each SQS record carries one `IngestMessage`. Records are reported as partial batch failures, so a record
whose body does not parse, or whose ingest raises a retryable problem, is retried (then dead-lettered) on
its own while its neighbours leave the queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kling_pipeline.batch import BatchResponse, process_sqs_batch
from kling_pipeline.messages import SqsRecord
from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.services.ingest import IngestMessage, ingest

IngestRecord = SqsRecord[IngestMessage]


@tracer.capture_method(capture_response=False)
def record_handler(record: IngestRecord) -> None:
    logger.set_correlation_id(record.body.generation_id)
    ingest(record.body)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> BatchResponse:
    return process_sqs_batch(event, IngestRecord, record_handler)
