"""Submit queue consumer: generations that waited for provider capacity try again (DESIGN.md §6.1).

Each SQS record carries one `SubmitMessage` (sent with a backoff delay). Partial batch failures keep a
failing record from failing its neighbours: it is retried on its own, then dead-lettered.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kling_pipeline.batch import BatchResponse, process_sqs_batch
from kling_pipeline.messages import SqsRecord
from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.services.submitter import SubmitMessage, retry_submission

SubmitRecord = SqsRecord[SubmitMessage]


@tracer.capture_method(capture_response=False)
def record_handler(record: SubmitRecord) -> None:
    logger.set_correlation_id(record.body.generation_id)
    retry_submission(record.body)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> BatchResponse:
    return process_sqs_batch(event, SubmitRecord, record_handler)
