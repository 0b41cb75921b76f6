"""Submit-queue consumer: generations that waited for provider capacity try again, and the safety net
every create sends (due at the first poll time) finishes what a crashed or failed create left undone and
starts the fallback state machine for a generation whose callback has not come.

The safety net is what keeps "every accepted generation ends in exactly one final state" without a state
machine per generation: it is on the queue before the generation is written, and a Lambda that crashes while
handling it leaves it on the queue, so it comes back until the fallback is started (StartExecution is
idempotent by name) or the generation is final."""

from __future__ import annotations

from kling_pipeline import messaging
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import utcnow
from kling_pipeline.domain.status import Status
from kling_pipeline.messages import SubmitMessage
from kling_pipeline.services import lifecycle
from kling_pipeline.services.generations import submit
from kling_pipeline.store.generations import get_generation_store

__all__ = ["SubmitMessage", "retry_submission"]


def retry_submission(message: SubmitMessage) -> None:
    """Submit again while queued (unless past the deadline); otherwise make sure what the creating process
    may not have finished is done: a terminal generation is announced, and one still running by now (its
    callback is late or lost) gets the fallback, polling at what is left of the first poll wait."""
    generation = get_generation_store().get(message.generation_id)
    if generation is None:
        return
    if generation.status.is_terminal:
        if not lifecycle.announce(generation):
            raise lifecycle.AnnouncementPending(generation.id)  # the message comes back to look again
        return
    if generation.status is not Status.QUEUED:
        waited = (utcnow() - generation.created_at).total_seconds()
        first_wait = max(1, int(get_settings().fallback_first_poll_s - waited))
        messaging.start_fallback(generation.id, first_wait_s=first_wait)
        return
    if generation.deadline_at is not None and utcnow() >= generation.deadline_at:
        lifecycle.fail(generation.id, "timeout", "no provider had capacity before the deadline")
        return
    submit(generation.model_copy(update={"submit_attempts": max(1, generation.submit_attempts)}))
