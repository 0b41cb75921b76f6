"""Provider callbacks: authenticate, keep a receipt, hand off to ingest, answer fast.

The body is deliberately ignored beyond its size: a forged or stale body can at most make us ask the
provider one more time.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from kling_pipeline import messaging
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import utcnow
from kling_pipeline.errors import NotFound, Unauthorized
from kling_pipeline.observability import logger, metrics
from kling_pipeline.providers.base import ProviderName
from kling_pipeline.services.ingest import IngestMessage
from kling_pipeline.services.tokens import verify_callback_token
from kling_pipeline.store.generations import get_generation_store


def accept_callback(provider: str, generation_id: str, token: str | None, body: bytes) -> None:
    if provider not in {name.value for name in ProviderName}:
        raise NotFound(f"unknown provider {provider!r}")
    if not verify_callback_token(generation_id, token):
        metrics.add_metric(name="CallbackRejected", unit=MetricUnit.Count, value=1)
        raise Unauthorized("invalid or missing callback token")
    store = get_generation_store()
    store.record_callback(generation_id, provider, utcnow())
    messaging.send(
        get_settings().ingest_queue_url,
        IngestMessage(generation_id=generation_id, reason=f"callback:{provider}"),
    )
    metrics.add_metric(name="CallbackAccepted", unit=MetricUnit.Count, value=1)
    logger.info(
        "callback accepted", extra={"generation_id": generation_id, "provider": provider, "bytes": len(body)}
    )
