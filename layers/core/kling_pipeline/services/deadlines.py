"""Per-request deadlines (`deadline_s`): the range check and the waits that must never overshoot them.

Why one module: the submit queue's backoff and the fallback's first wait are both "sleep, then look";
each must wake by the generation's own deadline (30 s up to the stack's `TASK_DEADLINE_S`), or a short
deadline would be honoured only as late as the next scheduled look.
"""

from __future__ import annotations

from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.domain.request import MIN_DEADLINE_S, GenerationRequest
from kling_pipeline.errors import InvalidInput


def check_deadline(request: GenerationRequest, stack_deadline_s: int) -> GenerationRequest:
    """`request`, or InvalidInput when its `deadline_s` is above the stack's (unset: the stack's applies;
    not written into the request, so a stack setting below 30 s in tests stays loadable)."""
    if request.deadline_s is not None and request.deadline_s > stack_deadline_s:
        raise InvalidInput.for_field(
            "deadline_s",
            f"must be between {MIN_DEADLINE_S} and this stack's TASK_DEADLINE_S ({stack_deadline_s})",
        )
    return request


def _seconds_left(generation: Generation) -> int | None:
    if generation.deadline_at is None:
        return None
    return max(1, int((generation.deadline_at - utcnow()).total_seconds()) + 1)


def retry_delay_s(generation: Generation, delay_s: int) -> int:
    """The submit queue's backoff, cut so the retry lands at the deadline at the latest."""
    left = _seconds_left(generation)
    return delay_s if left is None else min(delay_s, left)


def first_wait_s(generation: Generation) -> int:
    """The fallback's first wait, cut so its first poll is no later than the deadline."""
    wait = get_settings().fallback_first_poll_s
    left = _seconds_left(generation)
    return wait if left is None else min(wait, left)
