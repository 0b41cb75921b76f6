"""End-user webhooks (DESIGN.md §6.7): the terminal event POSTed to the request's `webhook_url`.

Flow: `lifecycle.announce` → `schedule_first_delivery` queues a `DeliveryMessage` on the WebhookQueue →
the webhook function calls `deliver` for each message: one attempt, recorded in DynamoDB, then either done
or the next attempt queued with the schedule's delay (`WEBHOOK_RETRY_SCHEDULE_S`, jittered). SQS delays
stop at 15 minutes, so a longer wait travels as `not_before` and the message is re-queued until it is due.
After the last attempt the message is moved to the WebhookDLQ (we consumed it, so SQS would not).

Attempt rules: https (or the local flag) to public addresses only, checked on the resolved addresses at
send time (`netguard`); a refused URL is recorded and never retried. 15 s timeout; redirects are never
followed (a 3xx is a failure); 2xx is delivered; 410 Gone means "stop", so nothing more is sent;
anything else, or no answer, is retried. Every attempt of every sequence (redeliveries start a new one)
carries the same `webhook-id`, so receivers can dedupe: delivery is at least once (a duplicated SQS
message repeats an attempt). The address check and the client's own lookup are two resolutions a moment
apart; pinning the connection to the checked address would close that last rebinding window.

Payloads: `{"type": "generation.succeeded" | "generation.failed" | "generation.canceled",
"timestamp": <event time>, "data": <the EventBridge detail> + fresh presigned output URLs}`; signatures
in `webhook_signing`.
"""

from __future__ import annotations

import json
import math
import random
import time
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from kling_pipeline import messaging, netguard
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation, rfc3339, utcnow
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import Conflict
from kling_pipeline.observability import logger, metrics
from kling_pipeline.services.webhook_signing import signature_headers, tenant_secret
from kling_pipeline.store.deliveries import DeliveryAttempt, Outcome, get_delivery_store
from kling_pipeline.store.generations import get_generation_store

EventType = Literal["generation.succeeded", "generation.failed", "generation.canceled"]

ATTEMPT_TIMEOUT_S = 15.0
# An attempt is only started with this much Lambda time left (connect + send + wait for the status line,
# each phase bounded by the timeout); otherwise the message is queued again at once for a fresh invocation.
MIN_TIME_LEFT_MS = 25_000
USER_AGENT = "kling-pipeline-webhooks/1.0"
UNREACHABLE = "could not reach the receiver"
_JITTER = 0.1  # each retry delay is drawn within ±10 % of the schedule, so retries of a burst spread out
_EVENT_TYPES: dict[Status, EventType] = {
    Status.SUCCEEDED: "generation.succeeded",
    Status.FAILED: "generation.failed",
    Status.CANCELED: "generation.canceled",
}


class DeliveryMessage(BaseModel):
    """One pending attempt on the WebhookQueue (and, after the last one, on the WebhookDLQ)."""

    generation_id: str
    sequence: int = 1
    attempt: int = 1
    occurred_at: datetime
    not_before: datetime | None = None
    # The outcome as announced, carried by every attempt of the sequence: what is written afterwards (a
    # canceled task's late cost, found by the chaos run) must not change the body under one webhook-id.
    detail: dict[str, Any] | None = None


class AttemptResult(BaseModel):
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    duration_ms: int


# ---- identifiers, secrets, payloads -------------------------------------------------------------------


def webhook_id(generation: Generation) -> str:
    """The Standard Webhooks message id: one per generation outcome, the same for every retry."""
    return f"msg_{generation.id}_{generation.status.value}"


def secret_for_tenant(tenant_id: str) -> str:
    """The tenant's `whsec_…` signing secret (derived from the stack's master; see webhook_signing)."""
    master = get_settings().webhook_signing_secret
    if master is None:
        raise RuntimeError("WEBHOOK_SIGNING_SECRET is not configured")
    return tenant_secret(master.get_secret_value(), tenant_id)


def webhook_payload(
    generation: Generation, occurred_at: datetime, detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    from kling_pipeline.store.media import get_media_store  # the MP4 readers behind it: on first use

    media = get_media_store()
    ttl = get_settings().presign_ttl_s
    data = dict(detail) if detail is not None else _event_detail(generation)
    # Every attempt of one webhook-id carries the same body: bookkeeping written after the outcome
    # (the `announced` mark, a lease) moves the record's updated_at, so the outcome's time is used.
    data["updated_at"] = rfc3339(occurred_at)
    data["outputs"] = [
        output.model_copy(update={"url": media.presign_get(output.bucket, output.key, ttl)}).model_dump(
            mode="json"
        )
        for output in generation.outputs
    ]
    return {"type": _EVENT_TYPES[generation.status], "timestamp": rfc3339(occurred_at), "data": data}


def _event_detail(generation: Generation) -> dict[str, Any]:
    """The announced event's detail. lifecycle (which calls into this module) is imported here: its admission
    control and provider clients are no part of a delivery, whose message carries the detail."""
    from kling_pipeline.services.lifecycle import event_detail

    return event_detail(generation)


# ---- scheduling ----------------------------------------------------------------------------------------


def schedule_first_delivery(generation: Generation) -> None:
    """Queue the first attempt for a freshly announced generation that asked for a webhook (once)."""
    if not generation.request.webhook_url or generation.status not in _EVENT_TYPES:
        return
    store = get_delivery_store()
    sequence = store.open_first_sequence(generation.id, generation.updated_at)
    if sequence is None:
        # An earlier announce opened the sequence but did not finish (announce only runs again then): it
        # may have died between the marker and the queue, or the marker's put was applied with its answer
        # lost and the retried put refused. Queue it again — at least once, under the same webhook-id.
        sequence = store.first_sequence(generation.id)
        if sequence is None:
            return
    message = DeliveryMessage(
        generation_id=generation.id,
        occurred_at=sequence.occurred_at,
        detail=_event_detail(generation),
    )
    try:
        _enqueue(message, delay_s=get_settings().webhook_retry_schedule_s[0])
    except Exception:
        store.forget_first_sequence(generation.id)
        raise


def redeliver(tenant_id: str, generation_id: str) -> dict[str, Any]:
    """Start a new delivery sequence (full retry schedule, same webhook-id) for a terminal generation."""
    generation = get_generation_store().get_for_tenant(tenant_id, generation_id)
    if not generation.request.webhook_url:
        raise Conflict(f"generation {generation_id} has no webhook_url; there is nothing to redeliver")
    if generation.status not in _EVENT_TYPES:
        raise Conflict(
            f"generation {generation_id} is {generation.status.value}; webhooks are sent only once a "
            "generation has succeeded, failed or was canceled"
        )
    sequence = get_delivery_store().open_next_sequence(generation_id, generation.updated_at)
    message = DeliveryMessage(
        generation_id=generation_id, sequence=sequence.number, occurred_at=sequence.occurred_at
    )
    _enqueue(message, delay_s=get_settings().webhook_retry_schedule_s[0])
    logger.info(
        "webhook redelivery queued", extra={"generation_id": generation_id, "sequence": sequence.number}
    )
    return {"webhook_id": webhook_id(generation), "sequence": sequence.number, "status": "queued"}


def list_deliveries(tenant_id: str, generation_id: str) -> list[DeliveryAttempt]:
    get_generation_store().get_for_tenant(tenant_id, generation_id)  # another tenant's id: NotFound
    return get_delivery_store().list_attempts(generation_id)


def _enqueue(message: DeliveryMessage, *, delay_s: float) -> None:
    messaging.send(get_settings().webhook_queue_url, message, delay_s=math.ceil(delay_s))


def _jittered(delay_s: int) -> float:
    return delay_s * random.uniform(1 - _JITTER, 1 + _JITTER)


# ---- delivery ------------------------------------------------------------------------------------------


def deliver(message: DeliveryMessage, *, time_left_ms: int | None = None) -> None:
    """Make the attempt `message` stands for (when due), record it, and queue what comes next."""
    now = utcnow()
    if message.not_before is not None and (wait_s := (message.not_before - now).total_seconds()) > 1:
        _enqueue(message, delay_s=wait_s)  # longer than SQS's 15-minute delay: wait another round
        return
    if time_left_ms is not None and time_left_ms < MIN_TIME_LEFT_MS:
        _enqueue(message, delay_s=0)  # a slow batch used this invocation's time: the next one takes it
        return
    generation = get_generation_store().get(message.generation_id)
    if generation is None or not generation.request.webhook_url or generation.status not in _EVENT_TYPES:
        logger.warning(
            "webhook message without a deliverable generation", extra=message.model_dump(mode="json")
        )
        return

    url = generation.request.webhook_url
    host = urlsplit(url).hostname or ""
    result = _attempt(generation, url, message.occurred_at, message.detail)
    schedule = get_settings().webhook_retry_schedule_s
    retry_in_s: float | None = None
    if result.outcome == "failed" and message.attempt < len(schedule):
        retry_in_s = _jittered(schedule[message.attempt])
    next_retry_at = utcnow() + timedelta(seconds=retry_in_s) if retry_in_s is not None else None
    dead_lettered = result.outcome == "failed" and retry_in_s is None
    get_delivery_store().record(
        generation.id,
        DeliveryAttempt(
            webhook_id=webhook_id(generation),
            event_type=_EVENT_TYPES[generation.status],
            sequence=message.sequence,
            attempt=message.attempt,
            attempted_at=now,
            url=url,
            host=host,
            outcome=result.outcome,
            status_code=result.status_code,
            error=result.error,
            duration_ms=result.duration_ms,
            next_retry_at=next_retry_at,
            dead_lettered=dead_lettered,
        ),
    )
    log = {
        "generation_id": generation.id,
        "host": host,  # never the URL: its path or query may carry the tenant's own token
        "sequence": message.sequence,
        "attempt": message.attempt,
        "outcome": result.outcome,
        "status_code": result.status_code,
        "error": result.error,
        "duration_ms": result.duration_ms,
    }
    if result.outcome == "delivered":
        metrics.add_metric(name="WebhookDelivered", unit=MetricUnit.Count, value=1)
        logger.info("webhook delivered", extra=log)
        return
    metrics.add_metric(name="WebhookAttemptFailed", unit=MetricUnit.Count, value=1)
    logger.warning("webhook attempt failed", extra={**log, "next_retry_at": next_retry_at})
    if retry_in_s is not None:
        following = message.model_copy(update={"attempt": message.attempt + 1, "not_before": next_retry_at})
        _enqueue(following, delay_s=retry_in_s)
    elif dead_lettered:
        # Consumed here, so SQS's redrive would never move it: put it on the DLQ ourselves. Reset to a
        # fresh first attempt, so moving it back to the WebhookQueue (a DLQ redrive) starts a new round.
        parked = message.model_copy(update={"attempt": 1, "not_before": None})
        messaging.send(get_settings().webhook_dlq_url, parked)
        metrics.add_metric(name="WebhookDeadLettered", unit=MetricUnit.Count, value=1)


def _attempt(
    generation: Generation, url: str, occurred_at: datetime, detail: dict[str, Any] | None
) -> AttemptResult:
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        netguard.check_url(url, allow_private=get_settings().local_allow_private_webhooks)
    except netguard.UnsafeUrl as exc:
        return AttemptResult(outcome="rejected", error=f"unsafe_url: {exc}", duration_ms=elapsed_ms())
    body = json.dumps(webhook_payload(generation, occurred_at, detail), separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        **signature_headers(
            secret_for_tenant(generation.tenant_id), webhook_id(generation), int(time.time()), body
        ),
    }
    try:
        # Streamed and closed unread: only the status line matters, whatever the receiver sends back.
        with http_client().stream("POST", url, content=body, headers=headers) as response:
            status = response.status_code
    except httpx.HTTPError as exc:
        # One text for every transport failure: "refused" vs "timed out" would turn the tenant-readable
        # delivery log into a port scanner of whatever the URL reaches. The operator's log has the detail.
        logger.info(
            "webhook transport error", extra={"host": urlsplit(url).hostname, "error": _describe(exc, url)}
        )
        return AttemptResult(outcome="failed", error=UNREACHABLE, duration_ms=elapsed_ms())
    if 200 <= status < 300:
        return AttemptResult(outcome="delivered", status_code=status, duration_ms=elapsed_ms())
    if status == 410:
        return AttemptResult(
            outcome="gone", status_code=status, error="410 Gone: no more tries", duration_ms=elapsed_ms()
        )
    error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    return AttemptResult(outcome="failed", status_code=status, error=error, duration_ms=elapsed_ms())


def _describe(exc: httpx.HTTPError, url: str) -> str:
    """The error's kind and text, with the URL (which may carry the tenant's token) cut down to its host."""
    text = str(exc).replace(url, urlsplit(url).hostname or "")
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


@cache
def http_client() -> httpx.Client:
    """Connections pinned to the checked address (`netguard.guarded_client`), no proxy from the env."""
    return netguard.guarded_client(
        timeout=httpx.Timeout(ATTEMPT_TIMEOUT_S),
        allow_private=get_settings().local_allow_private_webhooks,
        headers={"user-agent": USER_AGENT},
    )
