"""UploadsQueue consumer: S3 uploads under `uploads/` become generations (DESIGN.md §6.5).

Each SQS record carries one S3 event notification (or S3's test event, or our own delayed sidecar
re-check). Records are reported as partial batch failures, so a record that raises (a job still held by
another attempt, an AWS hiccup) is retried on its own, then dead-lettered, while its neighbours leave the
queue. Rejected uploads are not failures: they get `<name>.error.json` next to them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kling_pipeline.batch import BatchResponse, process_sqs_batch
from kling_pipeline.messages import SqsTextRecord
from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.services.uploads import handle_upload_message


@tracer.capture_method(capture_response=False)
def record_handler(record: SqsTextRecord) -> None:
    logger.set_correlation_id(record.messageId)
    handle_upload_message(record.body, queue_arn=record.eventSourceARN)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> BatchResponse:
    return process_sqs_batch(event, SqsTextRecord, record_handler)
