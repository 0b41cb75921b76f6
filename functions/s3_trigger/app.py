"""UploadsQueue consumer: S3 uploads under `uploads/` become generations (DESIGN.md §6.5).

Each SQS record carries one S3 event notification (or S3's test event, or our own delayed sidecar
re-check). Records are reported as partial batch failures, so a record that raises (a job still held by
another attempt, an AWS hiccup) is retried on its own, then dead-lettered, while its neighbours leave the
queue. Rejected uploads are not failures: they get `<name>.error.json` next to them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.services.uploads import handle_upload_message

processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> None:
    logger.set_correlation_id(record.message_id)
    handle_upload_message(record.body, queue_arn=record.event_source_arn)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
