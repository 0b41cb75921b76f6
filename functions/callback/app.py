"""Provider callbacks (`POST /v1/callbacks/{provider}/{id}?token=…`): verify, hand off, answer 200 fast.

Everything that takes time (querying the provider, copying videos) happens in ingest, behind a queue, so
the answer comes well inside the providers' 10-second timeout. The body is passed on as bytes and never
echoed: it is untrusted, and ingest re-queries the provider for the truth.
"""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from kling_pipeline.api_errors import ensure_body_size, register_error_handlers
from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.services.callbacks import accept_callback

app = APIGatewayRestResolver()
register_error_handlers(app)


def _raw_body() -> bytes:
    """The body exactly as the provider sent it (API Gateway base64-encodes binary media types)."""
    event = app.current_event
    body = event.body or ""
    raw = base64.b64decode(body) if event.is_base64_encoded else body.encode()
    ensure_body_size(len(raw))
    return raw


@app.post("/v1/callbacks/<provider>/<generation_id>")
def post_callback(provider: str, generation_id: str) -> dict[str, Any]:
    logger.append_keys(generation_id=generation_id, provider=provider)
    accept_callback(provider, generation_id, app.current_event.get_query_string_value("token"), _raw_body())
    return {"ok": True}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
