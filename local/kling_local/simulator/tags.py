"""Deterministic per-task test hooks, written into the prompt: `[sim:<tag>]`.

Random fault rates are good for chaos runs; a test that needs *this* task to fail wants a switch it can
see in its own request. Tags are read from `prompt` and every shot prompt (`multi_prompt[].prompt`):

- `[sim:fail]`            the task ends `failed` with a message after the generation time
- `[sim:content_policy]`  create is rejected as a content-policy violation (kling 400 code 1301,
                          evolink 400 `content_policy_violation`, kling3api 400 `INVALID_PROMPT`)
- `[sim:never]`           the task stays `processing` forever (fallback-poll deadline tests)
- `[sim:drop_callback]`   no callback is ever sent for the task
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

_TAG = re.compile(r"\[sim:([a-z_]+)\]")


class Tag(StrEnum):
    FAIL = "fail"
    CONTENT_POLICY = "content_policy"
    NEVER = "never"
    DROP_CALLBACK = "drop_callback"


def tags_in(texts: Iterable[str | None]) -> frozenset[Tag]:
    """The known tags found in any of the texts (unknown tags are ignored, like any prompt text)."""
    known = {tag.value for tag in Tag}
    found = {match for text in texts if text for match in _TAG.findall(text)}
    return frozenset(Tag(name) for name in found & known)


def prompts_of(body: dict[str, Any], shots: Any) -> list[str | None]:
    """The top-level prompt plus every shot prompt of a request body, whatever the provider."""
    texts: list[str | None] = [body.get("prompt") if isinstance(body.get("prompt"), str) else None]
    if isinstance(shots, list):
        texts += [shot.get("prompt") for shot in shots if isinstance(shot, dict)]
    return [text if isinstance(text, str) else None for text in texts]
