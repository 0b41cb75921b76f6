"""What a simulated task renders: resolution from quality + aspect ratio, duration, sound.

The simulator cannot fetch input media (no network beyond loopback, and the point is speed), so a video
edit — whose output length is the input's length at the real providers — takes its length from a
`duration` query parameter on the input URL (`https://…/clip.mp4?duration=7`) and defaults to 5 s.
A task with no aspect ratio (first frame given, video edit) renders 16:9.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

ASPECT_RATIOS = ("16:9", "9:16", "1:1")
SHORT_SIDE = {"720p": 720, "1080p": 1080, "4k": 2160}
DEFAULT_EDIT_DURATION_S = 5.0
EDIT_DURATION_RANGE = (3.0, 10.0)  # what the providers accept as an input video


@dataclass(frozen=True)
class OutputSpec:
    """The properties of the MP4 a successful task produces."""

    width: int
    height: int
    duration_s: float
    sound: bool


def resolution(quality: str, aspect_ratio: str | None) -> tuple[int, int]:
    """(width, height): the short side is 720 / 1080 / 2160, the long side follows the aspect ratio."""
    short = SHORT_SIDE[quality]
    long = short * 16 // 9
    ratio = aspect_ratio or "16:9"
    if ratio == "9:16":
        return short, long
    if ratio == "1:1":
        return short, short
    return long, short


def output_spec(quality: str, aspect_ratio: str | None, duration_s: float, sound: bool) -> OutputSpec:
    width, height = resolution(quality, aspect_ratio)
    return OutputSpec(width=width, height=height, duration_s=float(duration_s), sound=sound)


def hinted_duration(video_url: str) -> float:
    """The input video's length as hinted by `?duration=` on its URL, else 5 s.

    Raises ValueError when the hint is not a number or lies outside 3-10 s (what a provider would
    reject as an input video).
    """
    values = parse_qs(urlsplit(video_url).query).get("duration")
    if not values:
        return DEFAULT_EDIT_DURATION_S
    try:
        duration = float(values[0])
    except ValueError:
        raise ValueError(f"video duration hint {values[0]!r} is not a number") from None
    low, high = EDIT_DURATION_RANGE
    if not low <= duration <= high:
        raise ValueError(f"input video must be between {low:g} and {high:g} seconds, got {duration:g}")
    return duration
