"""One step of the fallback state machine: poll a generation whose callback may never come.

The state machine only waits and loops; every decision is here, so it is testable and the definition
stays a handful of states. It runs only for generations whose callback did not finish them by the first
poll time (or whose provider never calls back): see services.submitter.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, Field

from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.errors import ProviderError
from kling_pipeline.observability import logger, metrics
from kling_pipeline.providers.base import ProviderName
from kling_pipeline.services import capacity, lifecycle
from kling_pipeline.services.download import DownloadFailed, LinkExpired
from kling_pipeline.services.generations import cancel_at_provider
from kling_pipeline.services.ingest import IngestBusy, ingest_generation
from kling_pipeline.store.generations import get_generation_store


class PollState(BaseModel):
    generation_id: str
    wait_s: int = Field(ge=1)
    done: bool = False
    # Set by the state machine's GiveUp step after FALLBACK_MAX_POLL_ERRORS failed polls in a row.
    give_up: bool = False


def poll_step(state: PollState) -> PollState:
    if state.give_up:
        return give_up(state)
    generation = get_generation_store().get(state.generation_id)
    if generation is not None and generation.status.is_terminal:
        capacity.release(generation)  # idempotent: a crash between its final write and the release
    if generation is None or generation.status.is_terminal:
        # Final, but the poller stops only once the outcome is announced (a claim may be a dead one's).
        done = generation is None or lifecycle.announce(generation)
        return state.model_copy(update={"done": done})
    metrics.add_metric(name="FallbackPoll", unit=MetricUnit.Count, value=1)
    try:
        current = ingest_generation(generation)
    except (IngestBusy, ProviderError, DownloadFailed, LinkExpired) as exc:
        # Transient: poll again later; the deadline below still bounds how long we keep trying.
        logger.info("poll did not settle", extra={"generation_id": generation.id, "reason": str(exc)})
        current = generation
    except Exception:
        if not _past_deadline(generation):
            raise  # the state machine catches it, counts it and polls again after the same wait
        # Past the deadline a poll that keeps failing (a provider no longer configured, say) must not
        # keep the generation open for ever: it times out like any other.
        logger.exception("poll failed after the deadline", extra={"generation_id": generation.id})
        current = generation
    if current is not None and current.status.is_terminal:
        return state.model_copy(update={"done": True})
    if _past_deadline(generation):
        logger.info("generation passed its deadline", extra={"generation_id": generation.id})
        timed_out = lifecycle.fail(
            generation.id, "timeout", "the provider did not finish before the deadline"
        )
        # Stop the task where the provider can (EvoLink): it holds a concurrency slot and may bill.
        # Elsewhere the task may run on, so its slot stays taken until the lease frees it.
        if (
            timed_out is not None
            and timed_out.provider
            and timed_out.provider_task_id
            and cancel_at_provider(
                ProviderName(timed_out.provider), timed_out.account, timed_out.provider_task_id
            )
        ):
            capacity.release(timed_out, task_ended=True)
        return state.model_copy(update={"done": True})
    settings = get_settings()
    # Doubling from the first poll wait (an execution started late begins with a short one).
    next_wait = min(max(state.wait_s * 2, settings.fallback_first_poll_s), settings.fallback_max_interval_s)
    if generation.deadline_at is not None:
        # Never sleep past the deadline: the last poll lands on it.
        remaining = int((generation.deadline_at - utcnow()).total_seconds()) + 1
        next_wait = max(1, min(next_wait, remaining))
    return state.model_copy(update={"wait_s": next_wait, "done": current is None})


def give_up(state: PollState) -> PollState:
    """End a generation whose polls keep failing: `failed` with `poll_failed`, with its event and webhook.

    Only the store and the lifecycle run here (no provider, no download): whatever made every poll fail
    is not on this path. The state machine fails the execution afterwards, which raises the alarm.
    """
    generation = get_generation_store().get(state.generation_id)
    if generation is not None and not generation.status.is_terminal:
        metrics.add_metric(name="FallbackGaveUp", unit=MetricUnit.Count, value=1)
        logger.error("fallback gave up after repeated poll failures", extra={"generation_id": generation.id})
        lifecycle.fail(generation.id, "poll_failed", "the pipeline could not check on the generation")
    return state.model_copy(update={"done": True, "give_up": False})


def _past_deadline(generation: Generation) -> bool:
    return generation.deadline_at is not None and utcnow() >= generation.deadline_at
