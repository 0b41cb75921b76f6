"""Terminal transitions, in one place: the conditional write, then the event and the metrics.

Whoever gets there first (callback ingest, fallback poll, submitter, cancel) wins the compare-and-set;
everyone else gets None back and publishes nothing, so each generation announces exactly one outcome.

The terminal write of `succeed` and `fail` also takes the announcement claim for its writer (no write of
its own on the usual path: one DynamoDB call per generation less). The claim's expiry is the writer's
token: a writer whose terminal write was applied but whose answer was lost recognises its own claim on
the retry and publishes at once; a writer that died after the write leaves a claim that expires, and the
lookers (the ingest message coming back, the poller, the safety net, a look-again message) announce then.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from kling_pipeline import messaging
from kling_pipeline.config import get_settings
from kling_pipeline.domain.failures import public_failure_message
from kling_pipeline.domain.generation import Generation, GenerationError, Output, rfc3339, utcnow
from kling_pipeline.domain.money import ZERO, ActualCost
from kling_pipeline.domain.status import Status
from kling_pipeline.messages import SubmitMessage
from kling_pipeline.observability import logger, metrics
from kling_pipeline.services import budgets, capacity, webhooks
from kling_pipeline.store.documents import AlongRefused, TransactItem
from kling_pipeline.store.generations import get_generation_store

SUCCEEDED_EVENT = "Generation Succeeded"
FAILED_EVENT = "Generation Failed"
CANCELED_EVENT = "Generation Canceled"
DETAIL_TYPES = {
    Status.SUCCEEDED: SUCCEEDED_EVENT,
    Status.FAILED: FAILED_EVENT,
    Status.CANCELED: CANCELED_EVENT,
}
NOT_BILLED = ActualCost(usd=ZERO, basis="not_billed")


def succeed(generation_id: str, outputs: list[Output], actual_cost: ActualCost) -> Generation | None:
    claim = _claim_expiry()
    generation, settled, final = _end(
        generation_id,
        Status.SUCCEEDED,
        outputs=outputs,
        actual_cost=actual_cost,
        progress=100,
        error=None,
        announce_claimed_until=claim,  # the writer of the outcome is its announcer
    )
    if generation is not None:
        metrics.add_metric(name="GenerationSucceeded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="GenerationCostUsd", unit=MetricUnit.NoUnit, value=float(actual_cost.usd))
        latency = (utcnow() - generation.created_at).total_seconds()
        metrics.add_metric(name="RequestToStoredSeconds", unit=MetricUnit.Seconds, value=latency)
        final.after(generation)  # its slot, if the write could not free it; the queue nudged
        _publish(generation, settled=settled)
    else:
        _announce_if_final(generation_id, own_claim=claim)
    return generation


def fail(
    generation_id: str, code: str, message: str, actual_cost: ActualCost | None = None
) -> Generation | None:
    """End a generation `failed`; a provider's own `message` is logged, the tenant gets a fixed sentence.
    Without a cost from the provider, nothing was billed (docs/integrations.md)."""
    public = public_failure_message(code, message)
    if public != message:
        logger.info(
            "provider failure text", extra={"generation_id": generation_id, "provider_message": message}
        )
    claim = _claim_expiry()
    generation, settled, final = _end(
        generation_id,
        Status.FAILED,
        error=GenerationError(code=code, message=public),
        actual_cost=actual_cost or NOT_BILLED,
        announce_claimed_until=claim,  # the writer of the outcome is its announcer
    )
    if generation is not None:
        metrics.add_metric(name="GenerationFailed", unit=MetricUnit.Count, value=1)
        logger.info("generation failed", extra={"generation_id": generation_id, "code": code})
        final.after(generation)  # its slot, if the write could not free it; the queue nudged
        _publish(generation, settled=settled)
    else:
        _announce_if_final(generation_id, own_claim=claim)
    return generation


def _end(
    generation_id: str, to: Status, **changes: Any
) -> tuple[Generation | None, bool, capacity.FinalWrite]:
    """The final status, in one transaction with the budget's settlement and capacity's part (the task
    time, the slot freed: `capacity.FinalWrite`); whether it was settled there. A part that refuses its
    condition is left out and the write made again: the slot freed the way that reads first, or the
    settlement (refused when settled before: not on any path we know of) left to the announce, which
    settles once by its marker."""
    store = get_generation_store()
    final = capacity.FinalWrite()
    settlement = _Settlement()
    for _ in range(3):
        try:
            generation = store.transition(
                generation_id,
                to,
                along=lambda moved: settlement.items(moved) + final.items(moved),
                prepare=final.prepare,
                **changes,
            )
        except AlongRefused as refused:
            if not final.refused(refused.reasons[settlement.count :]):
                logger.warning(
                    "settlement not made with the final status", extra={"generation_id": generation_id}
                )
                settlement.wanted = False
            continue
        return generation, settlement.wanted, final
    raise RuntimeError(f"the final write of {generation_id} kept being refused")


class _Settlement:
    """The budget's settlement as the final write's first items (how many: to tell their refusals)."""

    def __init__(self) -> None:
        self.wanted = True
        self.count = 0

    def items(self, generation: Generation) -> list[TransactItem]:
        items = budgets.settlement(generation) if self.wanted else []
        self.count = len(items)
        return items


def _claim_expiry() -> datetime:
    """A fresh claim's expiry; to the microsecond, it also tells its writer's claim from anyone else's."""
    return utcnow() + timedelta(seconds=get_settings().announce_claim_s)


def _announce_if_final(generation_id: str, *, own_claim: datetime) -> None:
    """A refused terminal write: someone else's — or our own, applied with its answer lost, its retry then
    refused (found by the chaos run: nobody announced it). Whoever sees a final, unannounced generation
    announces it; a claim carrying our own expiry is ours (that lost answer), so we publish at once."""
    current = get_generation_store().get(generation_id)
    if current is None or not current.status.is_terminal or current.announced:
        return
    if current.announce_claimed_until == own_claim:
        _publish(current)
    else:
        announce(current)


def event_detail(generation: Generation) -> dict[str, Any]:
    """The `Generation Succeeded` / `Failed` / `Canceled` detail (docs/events); no presigned URLs."""
    return {
        "id": generation.id,
        "tenant_id": generation.tenant_id,
        "status": generation.status.value,
        "mode": generation.mode.value,
        "model": generation.model.value,
        "provider": generation.provider,
        "provider_task_id": generation.provider_task_id,
        "outputs": [output.model_dump(mode="json", exclude={"url"}) for output in generation.outputs],
        "estimated_cost": generation.estimated_cost.model_dump(mode="json")
        if generation.estimated_cost
        else None,
        "actual_cost": generation.actual_cost.model_dump(mode="json") if generation.actual_cost else None,
        "error": generation.error.model_dump(mode="json") if generation.error else None,
        "metadata": generation.metadata,
        "source": generation.source,
        "created_at": rfc3339(generation.created_at),
        "updated_at": rfc3339(generation.updated_at),
    }


class AnnouncementPending(Exception):
    """Another process claimed the announcement and has not marked it done yet (it may have died): the
    caller must look again later instead of considering the outcome announced."""


def announce(generation: Generation) -> bool:
    """Publish the terminal event, then remember it was published (at least once, never skipped).

    Once per state in a normal run: the publisher first claims the announcement (a compare-and-set with a
    short expiry), so another looker arriving mid-publish (a duplicate callback's ingest, the poller, the
    safety net) leaves it alone; only a claim a crash left behind expires and is announced again.

    Returns whether the outcome is announced now. False (claimed by someone else, or the publish failed)
    obliges a looker that would stop watching — the poller's last poll, an ingest or safety-net message —
    to look again later: the claim's holder may have died after claiming (found by the chaos run: the
    event and the webhook were then lost for good). So a look-again message is queued, and if even that
    cannot be sent while someone else's claim is live, `AnnouncementPending` is raised: the caller's own
    message (or poll) is then retried instead of the outcome depending on a send that failed.
    """
    if not generation.status.is_terminal or generation.announced:
        return True
    now = utcnow()
    already_announced = False

    def claim(current: Generation) -> Generation | None:
        nonlocal already_announced
        already_announced = current.announced
        claimed = current.announce_claimed_until
        if current.announced or (claimed is not None and claimed > now):
            return None
        until = now + timedelta(seconds=get_settings().announce_claim_s)
        return current.model_copy(update={"announce_claimed_until": until})

    if get_generation_store().update(generation.id, claim) is None:
        if not already_announced:  # being announced right now — or the claim is a dead process's
            _look_again_later(generation.id)
        return already_announced
    return _publish(generation)


def _publish(generation: Generation, *, settled: bool = False) -> bool:
    """Publish for the holder of the announcement claim, then mark it done — or give the claim back and
    leave a look-again if the publish failed. `settled`: the final status's write settled the budget."""
    detail_type = DETAIL_TYPES[generation.status]
    try:
        if not settled:
            budgets.settle(generation)  # once per generation (its marker), whoever announces first
        messaging.publish(detail_type, event_detail(generation))
        webhooks.schedule_first_delivery(generation)  # no-op without a webhook_url; queued once per outcome
    except Exception:
        # The outcome is recorded; whoever looks next (ingest, poller, the submitter's safety net) announces
        # it again, so a failed publish must neither undo nor fail the caller's work.
        logger.exception("outcome not announced yet", extra={"generation_id": generation.id})
        metrics.add_metric(name="AnnounceDeferred", unit=MetricUnit.Count, value=1)
        get_generation_store().update(generation.id, _release_claim)
        with contextlib.suppress(AnnouncementPending):  # released: the next looker announces at once
            _look_again_later(generation.id)
        return False

    def mark(current: Generation) -> Generation | None:
        if current.announced:
            return None
        return current.model_copy(update={"announced": True, "announce_claimed_until": None})

    get_generation_store().update(generation.id, mark)
    return True


def _look_again_later(generation_id: str) -> None:
    """A safety-net message after the claim's expiry, so the outcome is announced even when every looker
    that saw it pending has stopped watching (the claim's holder died after its terminal write).

    A send that fails raises `AnnouncementPending` (found by the chaos run: logging it lost an event when
    the claim's holder had died): the looker's own message comes back, or its poll is retried, instead."""
    settings = get_settings()
    try:
        messaging.send(
            settings.submit_queue_url,
            SubmitMessage(generation_id=generation_id),
            delay_s=settings.announce_claim_s + 1,
        )
    except Exception as exc:
        logger.exception("could not schedule another look", extra={"generation_id": generation_id})
        raise AnnouncementPending(generation_id) from exc


def _release_claim(current: Generation) -> Generation | None:
    """A failed publish gives the announcement back at once: the next looker retries it."""
    if current.announce_claimed_until is None:
        return None
    return current.model_copy(update={"announce_claimed_until": None})
