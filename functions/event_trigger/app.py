"""`Generation Requested` events on the stack's bus become generations (DESIGN.md §6.6).

EventBridge invokes the function asynchronously with the event itself (locally, the stack's rule-target
queue hands over the same unchanged event). A raised error makes Lambda retry the invocation, then
dead-letter it to EventTriggerDLQ; the service is idempotent on the event id, so retries and EventBridge
redeliveries never create a second generation. Bad requests are answered with a
`Generation Request Rejected` event, not an error.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.services.event_requests import handle_generation_requested


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_generation_requested(event).model_dump()
