"""Wire-format pieces more than one adapter needs (docs/providers.md).

Both gateways relay Kling, so they spell its concepts Kling's way: the std/pro tier, the multi-shot fields
and `element_list` (EvoLink nests the last two in `model_params`, seeds 000/001, with the names of the
official omni body, seed 003). Kept in one place so the adapters cannot drift apart on them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kling_pipeline.domain.element import ProviderElementStatus
from kling_pipeline.domain.request import GenerationRequest, Quality
from kling_pipeline.domain.status import Status

# Kling's `mode` / kling3api's type prefix; neither offers 4k.
KLING_TIER = {Quality.P720: "std", Quality.P1080: "pro"}

# For providers that report no progress: a coarse figure from the status so clients still see movement.
COARSE_PROGRESS = {Status.SUBMITTED: 0, Status.PROCESSING: 50, Status.SUCCEEDED: 100}

# Element creation runs as an ordinary provider task; its status in `ProviderElement` terms.
ELEMENT_STATUS: dict[Status, ProviderElementStatus] = {
    Status.SUBMITTED: "submitted",
    Status.PROCESSING: "processing",
    Status.SUCCEEDED: "ready",
    Status.FAILED: "failed",
}


def multi_shot_fields(request: GenerationRequest, render: Callable[[str], str]) -> dict[str, Any]:
    """`multi_shot`, and with shots `shot_type` and `multi_prompt` (durations as strings, 1-based index)."""
    if not request.shots:
        return {"multi_shot": False}
    return {
        "multi_shot": True,
        "shot_type": "customize",
        "multi_prompt": [
            {"index": index, "prompt": render(shot.prompt), "duration": str(shot.duration)}
            for index, shot in enumerate(request.shots, start=1)
        ],
    }


def element_list(request: GenerationRequest) -> list[dict[str, str]]:
    """In request order: `<<<element_N>>>` / `@ElementN` count this list."""
    return [{"element_id": element.element_id} for element in request.elements]
