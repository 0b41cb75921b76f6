"""What a simulated task costs, in each provider's unit, so cost accounting can be tested end to end.

Gateway prices are the seeds' (EvoLink: seeds 000/001 per-second USD with 72 credits per USD;
kling3api: seed 004 credits per second or fixed). The official Kling API's unit deduction is not in the
seeds: the simulator charges 0.6 units/s (std) or 0.8 units/s (pro), x1.5 with sound — invented, stable.
"""

from __future__ import annotations

from decimal import Decimal

EVOLINK_CREDITS_PER_USD = Decimal(72)

# (quality, sound) → USD per second; seed 001 for text/image-to-video, seed 000 for reference/edit.
_EVOLINK_BASE = {
    ("720p", False): Decimal("0.075"),
    ("720p", True): Decimal("0.100"),
    ("1080p", False): Decimal("0.100"),
    ("1080p", True): Decimal("0.125"),
    ("4k", False): Decimal("0.250"),  # assumed: seed 002 lists 4k as its own tier without a price
    ("4k", True): Decimal("0.250"),
}
_EVOLINK_REFERENCE = {"720p": Decimal("0.1125"), "1080p": Decimal("0.1501"), "4k": Decimal("0.300")}

# kling3api (seed 004): credits per second, or a fixed price for video edits.
_K3_PER_SECOND = {
    "pro-text-to-video": (54, 80),
    "pro-image-to-video": (54, 80),
    "std-text-to-video": (40, 60),
    "std-image-to-video": (40, 60),
    "o3-pro-text-to-video": (48, 48),
    "o3-pro-image-to-video": (48, 48),
    "o3-pro-reference-to-video": (72, 72),
    "o3-std-text-to-video": (36, 36),
    "o3-std-image-to-video": (36, 36),
    "o3-std-reference-to-video": (20, 20),
}
_K3_FIXED = {"o3-pro-video-edit": 435, "o3-std-video-edit": 360}


def evolink_cost(model: str, quality: str, sound: bool, duration_s: float) -> tuple[Decimal, Decimal]:
    """(credits, USD) for an EvoLink task; billing minimum 3 s."""
    seconds = Decimal(str(max(3.0, duration_s)))
    if model.endswith(("reference-to-video", "video-edit")):
        per_second = _EVOLINK_REFERENCE[quality]
    else:
        per_second = _EVOLINK_BASE[(quality, sound)]
    usd = (per_second * seconds).quantize(Decimal("0.0001"))
    return (usd * EVOLINK_CREDITS_PER_USD).quantize(Decimal("0.0001")), usd


def kling_units(mode: str, sound: bool, duration_s: float) -> Decimal:
    rate = Decimal("0.6") if mode == "std" else Decimal("0.8")
    if sound:
        rate *= Decimal("1.5")
    return (rate * Decimal(str(round(duration_s)))).quantize(Decimal("0.1"))


def kling3api_credits(task_type: str, sound: bool, duration_s: float) -> int:
    if task_type in _K3_FIXED:
        return _K3_FIXED[task_type]
    silent, with_sound = _K3_PER_SECOND[task_type]
    return (with_sound if sound else silent) * round(duration_s)


def format_units(value: Decimal) -> str:
    """Kling's string form: "3" rather than "3.0"."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
