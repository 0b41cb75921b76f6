"""`Generation Requested` events on the stack's bus → generations (DESIGN.md §6.6; docs/integrations.md).

The detail is the API body plus an optional `tenant_id`. The tenant is chosen by the event's `source`, never
by the detail: only the sources in `EVENT_SOURCES` are accepted (the template's rule filters on the same
list, and an optional bus policy names who may send them), each acts for its tenant in
`EVENT_SOURCE_TENANTS` (else `UPLOAD_TENANT_ID`), and a `tenant_id` that names another tenant is rejected.
Anyone with `events:PutEvents` could otherwise spend as any tenant. EventBridge delivers at least
once and Lambda retries failed asynchronous invocations, so the job is keyed on the event id
(`triggers.run_claimed`): a redelivered event answers with the first outcome and never creates a second
generation. A request that fails validation is answered on the same bus with a
`Generation Request Rejected` event carrying the error body, so the sender learns why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from kling_pipeline import messaging
from kling_pipeline.config import get_settings, key_value_pairs
from kling_pipeline.domain.generation import Generation
from kling_pipeline.errors import InvalidInput
from kling_pipeline.observability import logger, metrics
from kling_pipeline.services.generations import create_generation
from kling_pipeline.services.triggers import run_claimed, with_trigger_defaults

REJECTED_EVENT = "Generation Request Rejected"
CLAIM_KIND = "EVENT"
TENANT_FIELD = "tenant_id"
# Same shape as the UploadTenantId stack parameter.
_TENANT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class RequestOutcome(BaseModel):
    """What became of one `Generation Requested` event (the handler's return value)."""

    event_id: str
    generation_id: str | None = None
    rejected: bool = False
    duplicate: bool = False


def source_of(event_id: str) -> str:
    return f"eventbridge:{event_id}"


def handle_generation_requested(event: Mapping[str, Any]) -> RequestOutcome:
    """Create the generation an event asks for, once per event id; reject bad requests with an event."""
    event_id = str(event.get("id") or "")
    if not event_id:
        raise ValueError("an EventBridge event without an id cannot be deduplicated")
    detail = event.get("detail")
    body = dict(detail) if isinstance(detail, Mapping) else None
    sender = str(event.get("source") or "")
    tenant = _tenant_of_source(sender)
    if tenant is None:
        # The rule lets only the allowed sources through; this is the second lock, should it be widened.
        logger.warning("event from a source not in EVENT_SOURCES dropped", extra={"event_source": sender})
        metrics.add_metric(name="EventSourceRefused", unit=MetricUnit.Count, value=1)
        return RequestOutcome(event_id=event_id, rejected=True)
    asked = body.get(TENANT_FIELD) if body is not None else None
    source = source_of(event_id)
    logger.append_keys(event_id=event_id, tenant_id=tenant)

    def create() -> Generation:
        if body is None:
            raise InvalidInput.for_field("detail", "must be a JSON object: the API body plus tenant_id")
        if asked not in (None, "") and asked != tenant:
            raise InvalidInput.for_field(TENANT_FIELD, f"events from {sender} may only request for {tenant}")
        if not _TENANT_ID.match(tenant):
            raise InvalidInput.for_field(TENANT_FIELD, "must be 1-64 letters, digits, '_', '.' or '-'")
        request = with_trigger_defaults({k: v for k, v in body.items() if k != TENANT_FIELD})
        return create_generation(request, tenant_id=tenant, source=source)

    def reject(error: dict[str, Any]) -> None:
        logger.info("generation request rejected", extra={"code": error["code"]})
        messaging.publish(REJECTED_EVENT, rejection_detail(event, tenant, error))

    outcome = run_claimed(
        CLAIM_KIND,
        source,
        tenant_id=tenant if _TENANT_ID.match(tenant) else get_settings().upload_tenant_id,
        create=create,
        matches=lambda generation: generation.source == source,
        on_rejected=reject,
    )
    if outcome.generation_id and not outcome.replayed:
        metrics.add_metric(name="EventGenerationCreated", unit=MetricUnit.Count, value=1)
        logger.append_keys(generation_id=outcome.generation_id)
    return RequestOutcome(
        event_id=event_id,
        generation_id=outcome.generation_id,
        rejected=outcome.error is not None,
        duplicate=outcome.replayed,
    )


def rejection_detail(event: Mapping[str, Any], tenant_id: str, error: dict[str, Any]) -> dict[str, Any]:
    """The `Generation Request Rejected` detail (docs/events/generation-request-rejected.schema.json)."""
    detail = event.get("detail")
    metadata = detail.get("metadata") if isinstance(detail, Mapping) else None
    return {
        "request_event_id": str(event.get("id")),
        "request_source": event.get("source"),
        "tenant_id": tenant_id,
        "error": error,
        "metadata": metadata if isinstance(metadata, dict) else None,
    }


def _tenant_of_source(source: str) -> str | None:
    """The tenant events from `source` act for; None when the source is not allowed to request at all."""
    settings = get_settings()
    allowed = {item.strip() for item in (settings.event_sources or "").split(",") if item.strip()}
    if source not in allowed:
        return None
    return key_value_pairs(settings.event_source_tenants).get(source, settings.upload_tenant_id)
