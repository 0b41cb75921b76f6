"""Submit-queue consumer: generations that waited for provider capacity try again, and the safety net
every create sends finishes what a crashed or failed create left undone."""

from __future__ import annotations

from kling_pipeline import messaging
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import utcnow
from kling_pipeline.domain.status import Status
from kling_pipeline.services import lifecycle
from kling_pipeline.services.generations import SubmitMessage, submit
from kling_pipeline.store.generations import get_generation_store

__all__ = ["SubmitMessage", "retry_submission"]


def retry_submission(message: SubmitMessage) -> None:
    """Submit again while queued (unless past the deadline); otherwise make sure what the creating process
    may not have finished is done: the fallback runs for a submitted generation (StartExecution is
    idempotent by name), and a terminal one is announced."""
    generation = get_generation_store().get(message.generation_id)
    if generation is None:
        return
    if generation.status.is_terminal:
        lifecycle.announce(generation)
        return
    if generation.status is not Status.QUEUED:
        messaging.start_fallback(generation.id, first_wait_s=get_settings().fallback_first_poll_s)
        return
    if generation.deadline_at is not None and utcnow() >= generation.deadline_at:
        lifecycle.fail(generation.id, "timeout", "no provider had capacity before the deadline")
        return
    submit(generation.model_copy(update={"submit_attempts": max(1, generation.submit_attempts)}))
