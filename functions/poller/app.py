"""Fallback state machine task (DESIGN.md §6.4): one poll of a generation whose callback may never come.

The state machine passes the `PollState` in and out unchanged in shape; it only waits `wait_s` and loops
until `done`, so every decision lives in `services.fallback.poll_step`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.services.fallback import PollState, poll_step


@logger.inject_lambda_context(correlation_id_path="generation_id", clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = PollState.model_validate(event)
    next_state: dict[str, Any] = poll_step(state).model_dump(mode="json")
    return next_state
