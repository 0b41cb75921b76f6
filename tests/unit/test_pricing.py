"""Pricing: the seeds' figures, the 3-second minimum, video-edit billing and the cheapest-first ranking."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from kling_pipeline.domain.pricing import Pricing, Quote, estimate, load_table
from kling_pipeline.domain.request import GenerationRequest, Mode, Model, Quality, parse_generation_request
from kling_pipeline.providers.base import ProviderName as P

ALL = list(P)
IMG = "https://cdn.example.com/a.png"
VIDEO = "https://cdn.example.com/clip.mp4"


def req(**fields: Any) -> GenerationRequest:
    return parse_generation_request(fields)


def quote(est_request: GenerationRequest, provider: P, usd_per_credit: float | None = None) -> Quote:
    result = estimate(est_request, ALL, usd_per_credit)
    return next(q for q in result.quotes if q.provider is provider)


# --------------------------------------------------------------------------------------------------
# EvoLink (seeds 000, 001)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quality", "sound", "multiplier"),
    [("720p", False, "1.0"), ("720p", True, "1.334"), ("1080p", False, "1.334"), ("1080p", True, "1.667")],
)
def test_evolink_o3_text_and_image_multipliers(quality: str, sound: bool, multiplier: str) -> None:
    for mode in ({"mode": "text-to-video", "prompt": "x"}, {"mode": "image-to-video", "first_frame": IMG}):
        q = quote(req(quality=quality, sound=sound, duration=5, **mode), P.EVOLINK)
        assert q.usd == Decimal(5) * Decimal("0.075") * Decimal(multiplier)
        assert q.billed_seconds == 5


def test_evolink_1080p_sound_5s_is_seed_arithmetic() -> None:
    q = quote(req(mode="text-to-video", prompt="x", quality="1080p", sound=True, duration=5), P.EVOLINK)
    assert q.usd == Decimal("0.625125")  # 5 x 0.075 x 1.667


def test_evolink_720p_no_sound_is_base_price() -> None:
    q = quote(req(mode="text-to-video", prompt="x", duration=15), P.EVOLINK)
    assert q.usd == Decimal("1.125")  # 15 x 0.075


@pytest.mark.parametrize(("quality", "rate"), [("720p", "0.1125"), ("1080p", "0.1501")])
def test_evolink_reference_to_video_rates_sound_ignored(quality: str, rate: str) -> None:
    with_video = req(
        mode="reference-to-video",
        prompt="x",
        video={"url": VIDEO},
        quality=quality,
        duration=6,
        aspect_ratio="16:9",
    )
    assert quote(with_video, P.EVOLINK).usd == 6 * Decimal(rate)
    images_with_sound = req(
        mode="reference-to-video",
        prompt="x",
        reference_images=[IMG],
        quality=quality,
        sound=True,
        aspect_ratio="1:1",
    )
    assert quote(images_with_sound, P.EVOLINK).usd == 5 * Decimal(rate)


def test_evolink_video_edit_uses_reference_rate_on_input_length_and_says_assumed() -> None:
    edit = req(mode="video-edit", prompt="snow", video={"url": VIDEO, "duration_s": 7.5}, quality="1080p")
    q = quote(edit, P.EVOLINK)
    assert q.billed_seconds == 8  # rounded to the nearest second (seed 003)
    assert q.usd == 8 * Decimal("0.1501")
    assert q.note is not None and "assumed" in q.note


def test_video_edit_with_unknown_length_is_priced_at_the_maximum() -> None:
    q = quote(req(mode="video-edit", prompt="snow", video={"url": VIDEO}), P.EVOLINK)
    assert q.billed_seconds == 10
    assert q.note is not None and "unknown" in q.note


def test_evolink_4k_has_no_price_and_ranks_last() -> None:
    four_k = req(mode="text-to-video", prompt="x", quality="4k")
    result = Pricing().estimate(four_k, [P.EVOLINK])
    (q,) = result.quotes
    assert q.supported and q.usd is None and q.note is not None and "no published price" in q.note
    assert result.chosen is P.EVOLINK


# --------------------------------------------------------------------------------------------------
# Official Kling (seed 001: $0.084/s for O3; multipliers assumed)
# --------------------------------------------------------------------------------------------------


def test_official_o3_price_and_assumption() -> None:
    q = quote(req(mode="text-to-video", prompt="x", quality="1080p", sound=True, duration=5), P.KLING)
    assert q.usd == Decimal(5) * Decimal("0.084") * Decimal("1.667")
    assert q.note is not None and q.note.startswith("assumed")
    plain = quote(req(mode="text-to-video", prompt="x", duration=10), P.KLING)
    assert plain.usd == Decimal("0.840")


def test_official_kling_3_has_no_published_price() -> None:
    q = quote(req(model="kling-3.0", mode="text-to-video", prompt="x"), P.KLING)
    assert q.supported and q.usd is None and q.credits is None


# --------------------------------------------------------------------------------------------------
# kling3api (seed 004: credits)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "mode", "quality", "sound", "per_second"),
    [
        ("kling-3.0", "text-to-video", "1080p", False, 54),
        ("kling-3.0", "text-to-video", "1080p", True, 80),
        ("kling-3.0", "text-to-video", "720p", False, 40),
        ("kling-3.0", "text-to-video", "720p", True, 60),
        ("kling-3.0", "image-to-video", "1080p", True, 80),
        ("kling-o3", "text-to-video", "1080p", False, 48),
        ("kling-o3", "image-to-video", "1080p", True, 48),
        ("kling-o3", "text-to-video", "720p", False, 36),
    ],
)
def test_kling3api_credits_per_second(
    model: str, mode: str, quality: str, sound: bool, per_second: int
) -> None:
    extra: dict[str, Any] = {"prompt": "x"} if mode == "text-to-video" else {"first_frame": IMG}
    q = quote(req(model=model, mode=mode, quality=quality, sound=sound, duration=5, **extra), P.KLING3API)
    assert q.credits == 5 * per_second
    assert q.usd is None and q.note is not None and "ranked last" in q.note


@pytest.mark.parametrize(("quality", "per_second"), [("720p", 20), ("1080p", 72)])
def test_kling3api_reference_to_video(quality: str, per_second: int) -> None:
    request = req(
        mode="reference-to-video", prompt="x", reference_images=[IMG], quality=quality, aspect_ratio="16:9"
    )
    assert quote(request, P.KLING3API).credits == 5 * per_second


@pytest.mark.parametrize(("quality", "fixed"), [("720p", 360), ("1080p", 435)])
def test_kling3api_video_edit_is_fixed(quality: str, fixed: int) -> None:
    request = req(mode="video-edit", prompt="x", video={"url": VIDEO, "duration_s": 9}, quality=quality)
    q = quote(request, P.KLING3API, usd_per_credit=0.01)
    assert q.credits == fixed
    assert q.billed_seconds is None
    assert q.usd == Decimal(fixed) * Decimal("0.01")


def test_credits_converted_when_usd_per_credit_known() -> None:
    q = quote(req(mode="text-to-video", prompt="x", duration=5), P.KLING3API, usd_per_credit=0.002)
    assert q.credits == 180
    assert q.usd == Decimal("0.360")


# --------------------------------------------------------------------------------------------------
# Minimum billing, ranking, support
# --------------------------------------------------------------------------------------------------


def test_minimum_billing_is_three_seconds() -> None:
    table = load_table()
    assert table.min_billed_seconds == 3
    short = GenerationRequest.model_construct(
        model=Model.KLING_O3,
        mode=Mode.TEXT_TO_VIDEO,
        duration=2,
        quality=Quality.P720,
        sound=False,
        video=None,
    )
    q = Pricing().quote(short, P.EVOLINK)
    assert q.billed_seconds == 3
    assert q.usd == 3 * Decimal("0.075")
    three = quote(req(mode="text-to-video", prompt="x", duration=3), P.EVOLINK)
    assert three.billed_seconds == 3
    short_edit = req(mode="video-edit", prompt="x", video={"url": VIDEO, "duration_s": 3.2})
    assert quote(short_edit, P.EVOLINK).billed_seconds == 3


def test_cheapest_first_and_credits_only_ranked_last() -> None:
    result = estimate(req(mode="text-to-video", prompt="x"), ALL, None)
    assert [q.provider for q in result.quotes] == [P.EVOLINK, P.KLING, P.KLING3API]
    assert result.chosen is P.EVOLINK
    assert result.ranked() == [P.EVOLINK, P.KLING, P.KLING3API]


def test_credits_ranked_by_usd_when_converted() -> None:
    result = estimate(req(mode="text-to-video", prompt="x"), ALL, 0.001)  # 180 credits = $0.18
    assert result.chosen is P.KLING3API
    assert result.ranked() == [P.KLING3API, P.EVOLINK, P.KLING]


def test_only_enabled_providers_are_quoted() -> None:
    result = estimate(req(mode="text-to-video", prompt="x"), [P.KLING], None)
    assert [q.provider for q in result.quotes] == [P.KLING]
    assert result.chosen is P.KLING


def test_unsupported_from_table_and_from_adapters() -> None:
    o1 = req(model="kling-o1", mode="text-to-video", prompt="x")
    result = estimate(o1, ALL, None)
    assert result.chosen is P.KLING
    unsupported = {q.provider: q.reason for q in result.quotes if not q.supported}
    assert set(unsupported) == {P.EVOLINK, P.KLING3API}
    assert all(reason and "kling-o1" in reason for reason in unsupported.values())

    text = req(mode="text-to-video", prompt="x")
    result = estimate(text, ALL, None, unsupported={P.EVOLINK: "down for maintenance"})
    evo = next(q for q in result.quotes if q.provider is P.EVOLINK)
    assert (evo.supported, evo.reason, evo.usd) == (False, "down for maintenance", None)
    assert result.chosen is P.KLING
    assert result.quotes[-1].provider is P.EVOLINK


def test_no_supported_provider_means_no_choice() -> None:
    result = estimate(req(model="kling-o1", mode="text-to-video", prompt="x"), [P.EVOLINK], None)
    assert result.chosen is None
    assert result.ranked() == []


def test_table_holds_the_seed_figures() -> None:
    table = load_table()
    evo = table.find(P.EVOLINK, Model.KLING_O3, Mode.TEXT_TO_VIDEO)
    assert evo is not None and evo.base_per_second == Decimal("0.075")
    assert evo.multipliers == {
        "720p+off": Decimal("1.0"),
        "720p+on": Decimal("1.334"),
        "1080p+off": Decimal("1.334"),
        "1080p+on": Decimal("1.667"),
    }
    ref = table.find(P.EVOLINK, Model.KLING_O3, Mode.REFERENCE_TO_VIDEO)
    assert ref is not None and ref.per_second == {"720p": Decimal("0.1125"), "1080p": Decimal("0.1501")}
    official = table.find(P.KLING, Model.KLING_O3, Mode.IMAGE_TO_VIDEO)
    assert official is not None and official.base_per_second == Decimal("0.084") and official.assumed
    edit = table.find(P.KLING3API, Model.KLING_O3, Mode.VIDEO_EDIT)
    assert edit is not None and edit.fixed == {"720p": Decimal("360"), "1080p": Decimal("435")}
    assert table.find(P.KLING3API, Model.KLING_O1, Mode.TEXT_TO_VIDEO) is None
