"""Prompt placeholders: the two syntaxes users write, what they may refer to, and rendering per provider.

Kling's Omni prompts name inputs as `<<<image_1>>>`, `<<<element_1>>>`, `<<<video_1>>>` (seed 003); the
EvoLink gateway writes `@Image1`, `@Element1` (seed 002). We accept both, in any letter case, in `prompt`
and in every `shots[i].prompt`, and each adapter renders the one its provider understands.

Numbering (one rule, used by validation here and by every adapter):

- `image_N` is `reference_images[N-1]`. First and end frames are never numbered: they are frames, not
  subjects to point at, and the gateways send them in their own fields (`image_start`/`image_end`) while
  `@ImageN` counts `image_urls`, our reference images. An adapter that builds Kling's `image_list` must
  therefore put the reference images first, in order, and the frames after them, so that Kling's
  `<<<image_N>>>` (which counts `image_list` entries) lands on the same image.
- `element_N` is `elements[N-1]`, in request order (Kling's `element_list` keeps that order).
- `video_1` is `video`; there is at most one.

A placeholder that names a missing input is a validation error on the field that contains it; free text
that merely looks similar (`me@image1.com`, `@Image1x`) is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Syntax = Literal["kling", "at"]


class PlaceholderKind(StrEnum):
    IMAGE = "image"
    ELEMENT = "element"
    VIDEO = "video"


# Group names: k/n for the Kling form, ak/an for the @ form. `@` must not follow a word character, dot
# or `@` (e-mail addresses, handles) and must not run on into more word characters.
_PATTERN = re.compile(
    r"<<<(?P<k>image|element|video)_(?P<n>\d+)>>>"
    r"|(?<![\w.@])@(?P<ak>image|element|video)(?P<an>\d+)(?!\w)",
    re.IGNORECASE,
)

# Where each kind's numbering comes from, for messages the user can act on.
_SOURCE = {
    PlaceholderKind.IMAGE: "reference_images",
    PlaceholderKind.ELEMENT: "elements",
    PlaceholderKind.VIDEO: "video",
}


@dataclass(frozen=True)
class Placeholder:
    """One placeholder found in a text: what it points at (1-based) and where it was written."""

    kind: PlaceholderKind
    index: int
    start: int
    end: int
    written: str

    def render(self, syntax: Syntax) -> str:
        if syntax == "kling":
            return f"<<<{self.kind.value}_{self.index}>>>"
        return f"@{self.kind.value.capitalize()}{self.index}"


@dataclass(frozen=True)
class ReferableInputs:
    """How many inputs of each kind a prompt may point at (see the numbering rule above)."""

    images: int = 0
    elements: int = 0
    videos: int = 0

    def count(self, kind: PlaceholderKind) -> int:
        return {
            PlaceholderKind.IMAGE: self.images,
            PlaceholderKind.ELEMENT: self.elements,
            PlaceholderKind.VIDEO: self.videos,
        }[kind]


def _placeholder(match: re.Match[str]) -> Placeholder:
    kind = (match.group("k") or match.group("ak")).lower()
    number = match.group("n") or match.group("an")
    return Placeholder(PlaceholderKind(kind), int(number), match.start(), match.end(), match.group())


def find_placeholders(text: str) -> list[Placeholder]:
    """Every placeholder in `text`, in order, whichever syntax it was written in."""
    return [_placeholder(match) for match in _PATTERN.finditer(text)]


def _describe_missing(placeholder: Placeholder, available: int) -> str:
    source = _SOURCE[placeholder.kind]
    if placeholder.index == 0:
        return f"{placeholder.written}: placeholders are numbered from 1"
    if placeholder.kind is PlaceholderKind.VIDEO:
        have = "one video is given" if available else "no video is given"
        return f"{placeholder.written} refers to video {placeholder.index}, but {have}"
    noun = "image" if placeholder.kind is PlaceholderKind.IMAGE else "element"
    given = f"{available} {source} given" if available else f"no {source} given"
    return (
        f"{placeholder.written} refers to {noun} {placeholder.index}, but there are {given} "
        f"({noun}s are numbered from {source}, starting at 1)"
    )


def placeholder_issues(text: str, inputs: ReferableInputs) -> list[str]:
    """A message for each distinct placeholder in `text` that names an input the request does not have."""
    issues: list[str] = []
    seen: set[tuple[PlaceholderKind, int]] = set()
    for placeholder in find_placeholders(text):
        key = (placeholder.kind, placeholder.index)
        if key in seen:
            continue
        seen.add(key)
        available = inputs.count(placeholder.kind)
        if not 1 <= placeholder.index <= available:
            issues.append(_describe_missing(placeholder, available))
    return issues


def render(text: str, syntax: Syntax) -> str:
    """`text` with every placeholder rewritten in `syntax` (`kling`: `<<<image_1>>>`, `at`: `@Image1`)."""
    return _PATTERN.sub(lambda match: _placeholder(match).render(syntax), text)
