"""Provider callbacks: authenticate, keep a receipt, hand off to ingest, answer fast.

The body is never trusted: ingest asks the provider for the truth. It is only glanced at for one thing — a
callback that says the task is still running (Kling calls back on `processing` too) is kept as a receipt
and not handed to ingest, which would only record a progress step. A stale or lying body can therefore at
most make us ask the provider one more time, or one time less: a generation the callbacks do not finish
is still polled by the fallback from the first poll time.

The body's task id is also read (`named_task_id`): ingest uses it solely to adopt the task of a create
whose answer was lost (the token proves the URL is ours; the provider is asked about the id before
anything is believed).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from kling_pipeline import messaging
from kling_pipeline.clock import utcnow
from kling_pipeline.config import get_settings
from kling_pipeline.domain.provider_name import ProviderName
from kling_pipeline.errors import NotFound, Unauthorized
from kling_pipeline.messages import IngestMessage
from kling_pipeline.observability import logger, metrics
from kling_pipeline.services.tokens import verify_callback_token
from kling_pipeline.store.receipts import get_callback_receipts

# Callback statuses that only report progress, per provider (Kling's `task_status`; EvoLink calls back
# only when a task is final, kling3api never).
_PROGRESS_ONLY = {ProviderName.KLING.value: frozenset({"submitted", "processing"})}


def accept_callback(provider: str, generation_id: str, token: str | None, body: bytes) -> None:
    if provider not in {name.value for name in ProviderName}:
        raise NotFound(f"unknown provider {provider!r}")
    if not verify_callback_token(generation_id, provider, token):
        metrics.add_metric(name="CallbackRejected", unit=MetricUnit.Count, value=1)
        raise Unauthorized("invalid or missing callback token")
    get_callback_receipts().record(generation_id, provider, utcnow())
    if _reports_progress_only(provider, body):
        metrics.add_metric(name="CallbackProgress", unit=MetricUnit.Count, value=1)
        return
    messaging.send(
        get_settings().ingest_queue_url,
        IngestMessage(
            generation_id=generation_id,
            reason=f"callback:{provider}",
            provider=provider,
            task_id=named_task_id(body),
        ),
    )
    metrics.add_metric(name="CallbackAccepted", unit=MetricUnit.Count, value=1)
    logger.info(
        "callback accepted", extra={"generation_id": generation_id, "provider": provider, "bytes": len(body)}
    )


def _reports_progress_only(provider: str, body: bytes) -> bool:
    """Whether the body claims the task is still running (anything unreadable counts as "maybe final")."""
    statuses = _PROGRESS_ONLY.get(provider)
    if not statuses:
        return False
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return False
    task = parsed.get("data", parsed) if isinstance(parsed, dict) else None
    return isinstance(task, dict) and task.get("task_status") in statuses


_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def named_task_id(body: bytes) -> str | None:
    """The task id a callback body names (EvoLink `id`, Kling `task_id`, possibly under `data`), when it
    looks like one: it may end up in a provider URL path, so nothing but letters, digits, `_` and `-`."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    inner = parsed["data"] if isinstance(parsed.get("data"), dict) else parsed
    value = inner.get("task_id") or inner.get("id")
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return text if _TASK_ID.fullmatch(text) else None
