"""DESIGN.md §5 rules on the unified request: each rule valid and invalid, on the exact field, with a
message that says the limit and what was sent."""

from __future__ import annotations

from typing import Any

import pytest

from kling_pipeline.config import reset_settings
from kling_pipeline.domain import request as request_module
from kling_pipeline.domain.request import GenerationRequest, parse_generation_request
from kling_pipeline.errors import InvalidInput

IMG = "https://cdn.example.com/a.jpg"
VID = "s3://my-bucket/uploads/in.mp4"

T2V: dict[str, Any] = {"mode": "text-to-video", "prompt": "A cat surfing at sunset"}
I2V: dict[str, Any] = {"mode": "image-to-video", "first_frame": IMG}
R2V: dict[str, Any] = {"mode": "reference-to-video", "reference_images": [IMG], "aspect_ratio": "16:9"}
R2V_VIDEO: dict[str, Any] = {"mode": "reference-to-video", "video": {"url": VID}, "aspect_ratio": "9:16"}
EDIT: dict[str, Any] = {"mode": "video-edit", "video": {"url": VID}, "prompt": "Make it snow"}


def ok(base: dict[str, Any], **changes: Any) -> GenerationRequest:
    return parse_generation_request({**base, **changes})


def issues(base: dict[str, Any], **changes: Any) -> dict[str, str]:
    with pytest.raises(InvalidInput) as caught:
        parse_generation_request({**base, **changes})
    return {detail.field: detail.issue for detail in caught.value.details}


def shots(*durations: int) -> list[dict[str, Any]]:
    return [{"prompt": f"Scene {n}", "duration": d} for n, d in enumerate(durations, 1)]


# ---- defaults and echo ------------------------------------------------------------------------------


def test_defaults_are_filled_and_echoed() -> None:
    assert ok(T2V).model_dump(mode="json") == {
        "model": "kling-o3",
        "mode": "text-to-video",
        "prompt": "A cat surfing at sunset",
        "negative_prompt": None,
        "duration": 5,
        "aspect_ratio": "16:9",
        "quality": "720p",
        "sound": False,
        "first_frame": None,
        "end_frame": None,
        "reference_images": [],
        "elements": [],
        "video": None,
        "shots": None,
        "cfg_scale": None,
        "watermark": False,
        "provider": None,
        "webhook_url": None,
        "metadata": {},
        "deadline_s": None,
    }


@pytest.mark.parametrize(
    "body", [T2V, I2V, R2V, R2V_VIDEO, EDIT, {"mode": "text-to-video", "shots": shots(2, 3)}]
)
def test_normalised_request_validates_to_itself(body: dict[str, Any]) -> None:
    first = parse_generation_request(body)
    assert parse_generation_request(first.model_dump(mode="json")) == first


# ---- rule 1: prompt -----------------------------------------------------------------------------------


def test_prompt_limit() -> None:
    assert ok(T2V, prompt="x" * 2500).prompt == "x" * 2500
    assert issues(T2V, prompt="x" * 2501) == {"prompt": "must be at most 2500 characters, got 2501"}


@pytest.mark.parametrize("prompt", [None, "", "   "])
def test_text_to_video_needs_a_prompt_or_shots(prompt: str | None) -> None:
    assert "required for text-to-video" in issues(T2V, prompt=prompt)["prompt"]
    assert ok(T2V, prompt=None, shots=shots(5)).is_multi_shot


def test_prompt_and_shots_are_mutually_exclusive() -> None:
    assert "cannot be combined with shots" in issues(T2V, shots=shots(5))["prompt"]


def test_prompt_optional_for_image_to_video_but_required_for_edit() -> None:
    assert ok(I2V).prompt is None
    assert "describe the edit" in issues(EDIT, prompt=None)["prompt"]


# ---- rule 2: duration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "duration", "expected"), [
    (T2V, 3, None), (T2V, 15, None), (T2V, 2, "must be 3-15 seconds, got 2"), (T2V, 16, "must be 3-15 seconds, got 16"),
    (R2V_VIDEO, 10, None), (R2V_VIDEO, 11, "must be 3-10 seconds with a video input, got 11"),
])  # fmt: skip
def test_duration_range(base: dict[str, Any], duration: int, expected: str | None) -> None:
    if expected is None:
        assert ok(base, duration=duration).duration == duration
    else:
        assert issues(base, duration=duration) == {"duration": expected}


@pytest.mark.parametrize(("value", "expected"), [
    ("abc", "must be an integer, got string"), (5.5, "must be a whole number, got 5.5"), ([5], "must be an integer, got array"),
])  # fmt: skip
def test_duration_type(value: Any, expected: str) -> None:
    assert issues(T2V, duration=value) == {"duration": expected}


@pytest.mark.parametrize("duration", [None, 3, 99])
def test_video_edit_ignores_duration(duration: int | None) -> None:
    request = ok(EDIT, duration=duration)
    assert request.duration is None
    assert request.model_dump(mode="json")["duration"] is None


def test_duration_defaults_to_five_even_when_null() -> None:
    assert ok(T2V).duration == 5
    assert ok(T2V, duration=None).duration == 5


# ---- rule 3: aspect ratio -----------------------------------------------------------------------------


def test_aspect_ratio_defaults_and_exemptions() -> None:
    assert ok(T2V).aspect_ratio == "16:9"
    assert ok(I2V).aspect_ratio is None  # follows the first frame
    assert ok(I2V, aspect_ratio="9:16").aspect_ratio == "9:16"
    assert ok(EDIT, aspect_ratio="1:1").aspect_ratio is None  # follows the input video


@pytest.mark.parametrize("body", [
    {"mode": "image-to-video", "reference_images": [IMG]},
    {"mode": "reference-to-video", "reference_images": [IMG]},
    {"mode": "reference-to-video", "video": {"url": VID}},
])  # fmt: skip
def test_aspect_ratio_required_without_first_frame(body: dict[str, Any]) -> None:
    assert issues(body) == {"aspect_ratio": "required when no first_frame is given: one of 16:9, 9:16, 1:1"}


def test_aspect_ratio_values() -> None:
    assert issues(T2V, aspect_ratio="4:3") == {
        "aspect_ratio": "must be one of '16:9', '9:16' or '1:1', got '4:3'"
    }


# ---- rule 4: sound ------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [R2V_VIDEO, EDIT])
def test_sound_must_be_off_with_a_video(base: dict[str, Any]) -> None:
    issue = issues(base, sound=True)["sound"]
    assert "must be false when a video input is given" in issue
    assert "video.keep_original_sound" in issue
    assert ok(base).sound is False


def test_sound_allowed_without_video() -> None:
    assert ok(T2V, sound=True).sound is True


# ---- rules 5 and 8: what a URL reveals ----------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://cdn.example.com/a.JPG", "https://cdn.example.com/a.jpeg?sig=1", "https://cdn.example.com/b.png",
    "https://picsum.photos/id/1015/1280/720", "s3://my-bucket/path/to/img.png", "s3://my.bucket-1/k",
])  # fmt: skip
def test_image_urls_accepted(url: str) -> None:
    assert ok(I2V, first_frame=url).first_frame == url


@pytest.mark.parametrize(("url", "expected"), [
    ("http://cdn.example.com/a.jpg", "must be an https:// or s3://bucket/key URL, got http://"),
    ("ftp://cdn.example.com/a.jpg", "must be an https:// or s3://bucket/key URL, got ftp://"),
    ("a.jpg", "must be an https:// or s3://bucket/key URL, got 'a.jpg'"),
    ("https:///a.jpg", "must be an https:// URL with a host name, got 'https:///a.jpg'"),
    ("s3://my-bucket/", "must be a well-formed s3://bucket/key URL, got 's3://my-bucket/'"),
    ("s3://My_Bucket/a.png", "must be a well-formed s3://bucket/key URL, got 's3://My_Bucket/a.png'"),
    ("https://cdn.example.com/a.gif", "must point to a .jpeg, .jpg or .png file, got .gif"),
    ("s3://my-bucket/a.webp", "must point to a .jpeg, .jpg or .png file, got .webp"),
])  # fmt: skip
def test_image_urls_rejected(url: str, expected: str) -> None:
    assert issues(I2V, first_frame=url) == {"first_frame": expected}


def test_image_url_issue_names_the_list_index() -> None:
    body = {
        "mode": "reference-to-video",
        "aspect_ratio": "1:1",
        "reference_images": [IMG, IMG, "https://x.io/c.bmp"],
    }
    assert issues(body) == {"reference_images[2]": "must point to a .jpeg, .jpg or .png file, got .bmp"}


@pytest.mark.parametrize(("url", "expected"), [
    ("https://cdn.example.com/in.mov", None), ("https://cdn.example.com/stream", None),
    ("https://cdn.example.com/in.avi", "must point to a .mov or .mp4 file, got .avi"),
    ("http://cdn.example.com/in.mp4", "must be an https:// or s3://bucket/key URL, got http://"),
])  # fmt: skip
def test_video_urls(url: str, expected: str | None) -> None:
    if expected is None:
        assert ok(EDIT, video={"url": url}).video is not None
    else:
        assert issues(EDIT, video={"url": url}) == {"video.url": expected}


@pytest.mark.parametrize(("seconds", "expected"), [
    (3, None), (10, None), (2.5, "input videos must be 3-10 seconds long, got 2.5"),
    (12, "input videos must be 3-10 seconds long, got 12"),
])  # fmt: skip
def test_known_video_length(seconds: float, expected: str | None) -> None:
    video = {"url": VID, "duration_s": seconds}
    if expected is None:
        assert ok(EDIT, video=video).effective_duration == seconds
    else:
        assert issues(EDIT, video=video) == {"video.duration_s": expected}


# ---- rule 6: image-to-video inputs --------------------------------------------------------------------


def test_image_to_video_needs_an_image() -> None:
    issue = issues({"mode": "image-to-video", "prompt": "hi"})["first_frame"]
    assert issue == "image-to-video needs at least one image: first_frame, end_frame or reference_images"
    assert ok({"mode": "image-to-video", "reference_images": [IMG], "aspect_ratio": "1:1"}).image_count == 1


def test_end_frame_needs_first_frame() -> None:
    body = {"mode": "image-to-video", "end_frame": IMG, "aspect_ratio": "1:1"}
    assert issues(body) == {"end_frame": "needs a first_frame: an end frame alone is not supported"}
    assert ok(I2V, end_frame=IMG).image_count == 2


def test_no_end_frame_with_more_than_two_images() -> None:
    assert issues(I2V, end_frame=IMG, reference_images=[IMG]) == {
        "end_frame": "not supported with more than 2 images in total, got 3 "
        "(first_frame, end_frame and 1 reference_images)"
    }


# ---- rule 7: how many images and elements -------------------------------------------------------------


def elements(count: int) -> list[dict[str, str]]:
    return [{"element_id": str(100 + n)} for n in range(count)]


@pytest.mark.parametrize(("body", "refs", "n_elements", "expected"), [
    (R2V, 4, 3, None),
    (R2V, 5, 3, "images and elements together must be at most 7, got 5 image(s) + 3 element(s) = 8"),
    (R2V_VIDEO, 2, 2, None),
    (R2V_VIDEO, 3, 2, "images and elements together must be at most 4 with a video input, got 3 image(s) + 2 element(s) = 5"),
    (EDIT, 4, 0, None),
    (EDIT, 4, 1, "images and elements together must be at most 4 with a video input, got 4 image(s) + 1 element(s) = 5"),
])  # fmt: skip
def test_images_plus_elements(body: dict[str, Any], refs: int, n_elements: int, expected: str | None) -> None:
    changes = {"reference_images": [IMG] * refs, "elements": elements(n_elements)}
    if expected is None:
        ok(body, **changes)
    else:
        assert issues(body, **changes) == {"reference_images": expected}


def test_elements_limit_is_reported_on_elements_when_there_are_no_reference_images() -> None:
    assert "at most 7" in issues(R2V, reference_images=[], elements=elements(8))["elements"]


def test_at_most_three_elements_with_a_first_frame() -> None:
    assert len(ok(I2V, elements=elements(3)).elements) == 3
    assert issues(I2V, elements=elements(4)) == {"elements": "at most 3 elements with a first_frame, got 4"}


def test_numeric_element_ids_are_kept_as_text() -> None:
    assert ok(I2V, elements=[{"element_id": 789012}]).elements[0].element_id == "789012"


# ---- modes and rule 9 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["first_frame", "end_frame", "reference_images", "elements", "video"])
def test_text_to_video_takes_no_media(field: str) -> None:
    value: Any = {
        "first_frame": IMG, "end_frame": IMG, "reference_images": [IMG],
        "elements": elements(1), "video": {"url": VID},
    }[field]  # fmt: skip
    assert (
        issues(T2V, **{field: value})[field]
        == "not used by text-to-video; use image-to-video or reference-to-video"
    )


def test_image_to_video_takes_no_video() -> None:
    assert "use reference-to-video" in issues(I2V, video={"url": VID})["video"]


def test_reference_to_video_needs_a_reference() -> None:
    body = {"mode": "reference-to-video", "aspect_ratio": "1:1", "prompt": "hi"}
    assert issues(body) == {
        "reference_images": "reference-to-video needs reference_images, elements or video"
    }
    assert ok(body, elements=elements(1)).elements
    request = ok(body, video={"url": VID})
    assert request.video_refer_type == "feature"


def test_video_edit_needs_a_video() -> None:
    assert issues(EDIT, video=None) == {"video": "required for video-edit (the video to edit)"}


@pytest.mark.parametrize("field", ["first_frame", "end_frame"])
def test_video_edit_takes_no_frames(field: str) -> None:
    expected = "cannot be combined with video-edit: the edited video keeps its own frames"
    assert issues(EDIT, **{field: IMG})[field] == expected


def test_video_edit_takes_reference_images_and_elements() -> None:
    request = ok(EDIT, reference_images=[IMG], elements=elements(1))
    assert request.video_refer_type == "base"
    assert request.has_video_input


# ---- rule 10: shots -----------------------------------------------------------------------------------


def test_shots_sum_must_match_duration() -> None:
    assert issues(T2V, prompt=None, shots=shots(3, 4), duration=8) == {
        "shots[1].duration": "durations must sum to duration (8), got 7"
    }
    assert ok(T2V, prompt=None, shots=shots(3, 5), duration=8).duration == 8


def test_duration_defaults_to_the_shots_sum() -> None:
    request = ok(T2V, prompt=None, shots=shots(3, 4))
    assert request.duration == 7
    assert request.model_dump(mode="json")["duration"] == 7


def test_shots_sum_must_be_a_valid_duration() -> None:
    assert issues(T2V, prompt=None, shots=shots(5, 6, 5)) == {
        "shots": "shot durations add up to 16 seconds; the total must be 3-15 seconds"
    }


@pytest.mark.parametrize(("value", "field", "expected"), [
    ([], "shots", "must have at least 1 item, got 0"),
    (shots(1, 1, 1, 1, 1, 1, 1), "shots", "must have at most 6 items, got 7"),
    ([{"prompt": "x" * 513, "duration": 5}], "shots[0].prompt", "must be at most 512 characters, got 513"),
    ([{"prompt": "a", "duration": 5}, {"prompt": " ", "duration": 1}], "shots[1].prompt", "must not be empty: every shot needs its own prompt"),
    ([{"prompt": "a", "duration": 5}, {"prompt": "b", "duration": 0}], "shots[1].duration", "must be at least 1, got 0"),
    ([{"prompt": "a"}], "shots[0].duration", "required"),
])  # fmt: skip
def test_shot_limits(value: list[dict[str, Any]], field: str, expected: str) -> None:
    assert issues(T2V, prompt=None, shots=value)[field] == expected


def test_six_shots_of_512_chars_are_fine() -> None:
    six = [{"prompt": "x" * 512, "duration": 2} for _ in range(6)]
    assert ok(T2V, prompt=None, shots=six).duration == 12


def test_shots_not_for_video_edit() -> None:
    assert "not supported by video-edit" in issues(EDIT, shots=shots(5))["shots"]


# ---- rule 11 and model capabilities --------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("cfg_scale", 0.5), ("negative_prompt", "blurry")])
def test_prompt_tuning_only_on_kling_3(field: str, value: Any) -> None:
    assert issues(T2V, **{field: value}) == {field: "only supported by model kling-3.0, got model kling-o3"}
    assert getattr(ok(T2V, model="kling-3.0", **{field: value}), field) == value


@pytest.mark.parametrize(
    ("value", "expected"), [(-0.1, "must be at least 0, got -0.1"), (1.5, "must be at most 1, got 1.5")]
)
def test_cfg_scale_range(value: float, expected: str) -> None:
    assert issues(T2V, model="kling-3.0", cfg_scale=value) == {"cfg_scale": expected}


@pytest.mark.parametrize("body", [R2V, EDIT])
def test_kling_3_is_text_and_image_to_video_only(body: dict[str, Any]) -> None:
    issue = issues(body, model="kling-3.0")["mode"]
    assert issue.startswith("model kling-3.0 supports image-to-video and text-to-video only, got ")
    assert issue.endswith("; use kling-o3")


def test_kling_3_image_to_video_frames_and_elements_but_no_reference_images() -> None:
    assert ok(I2V, model="kling-3.0", end_frame=IMG, elements=elements(2)).model == "kling-3.0"
    assert issues(I2V, model="kling-3.0", reference_images=[IMG]) == {
        "reference_images": "not supported by model kling-3.0 (frames only); use kling-o3"
    }


def test_kling_o1_runs_all_modes_without_shots_or_sound() -> None:
    for body in (T2V, I2V, R2V, R2V_VIDEO, EDIT):
        assert ok(body, model="kling-o1").model == "kling-o1"
    assert issues(T2V, model="kling-o1", prompt=None, shots=shots(5)) == {
        "shots": "multi-shot is not supported by model kling-o1; use kling-o3"
    }
    assert "cannot generate sound" in issues(T2V, model="kling-o1", sound=True)["sound"]


def test_unknown_model() -> None:
    assert issues(T2V, model="kling-9") == {
        "model": "must be one of 'kling-o3', 'kling-3.0' or 'kling-o1', got 'kling-9'"
    }


# ---- rule 12: webhook_url -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://example.com/hooks/video", "https://hooks.example.co.uk:8443/a?b=c", "https://8.8.8.8/hook",
    "https://[2001:4860:4860::8888]/hook",
])  # fmt: skip
def test_public_webhooks_accepted(url: str) -> None:
    assert ok(T2V, webhook_url=url).webhook_url == url


@pytest.mark.parametrize(("url", "expected"), [
    ("http://example.com/hook", "must be an https:// URL, got http://"),
    ("example.com/hook", "must be an https:// URL, got 'example.com/hook'"),
    ("https://127.0.0.1/hook", "must be a public address; 127.0.0.1 is private, loopback, link-local or reserved"),
    ("https://10.1.2.3/hook", "must be a public address; 10.1.2.3 is private, loopback, link-local or reserved"),
    ("https://192.168.1.1/", "must be a public address"),
    ("https://172.16.0.9/", "must be a public address"),
    ("https://100.64.0.1/", "must be a public address"),
    ("https://169.254.169.254/latest/meta-data", "must be a public address"),
    ("https://[::1]/hook", "must be a public address"),
    ("https://[fe80::1]/hook", "must be a public address"),
    ("https://[fd00::1]/hook", "must be a public address"),
    ("https://[::ffff:127.0.0.1]/hook", "must be a public address"),
    ("https://0.0.0.0/", "must be a public address"),
    ("https://2130706433/", "must be a public address"),
    ("https://0x7f.1/", "must be a public address"),
    ("https://localhost/hook", "must be a public, fully qualified host name, got 'localhost'"),
    ("https://LOCALHOST./hook", "must be a public, fully qualified host name"),
    ("https://api.localhost/hook", "must be a public, fully qualified host name"),
    ("https://metadata.google.internal/", "must be a public, fully qualified host name"),
    ("https://printer.local/", "must be a public, fully qualified host name"),
    ("https://intranet/hook", "must be a public, fully qualified host name, got 'intranet'"),
    ("https://user:pw@example.com/", "must not contain credentials"),
    ("https://example.com:99999/", "has an invalid port"),
    ("https://example.com/" + "a" * 2030, "must be at most 2048 characters, got 2050"),
])  # fmt: skip
def test_webhooks_rejected(url: str, expected: str) -> None:
    assert issues(T2V, webhook_url=url)["webhook_url"].startswith(expected)


def test_private_webhooks_allowed_by_the_local_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_ALLOW_PRIVATE_WEBHOOKS", "1")
    reset_settings()
    try:
        assert ok(T2V, webhook_url="http://127.0.0.1:9000/hook").webhook_url == "http://127.0.0.1:9000/hook"
        assert "https://" in issues(T2V, webhook_url="ftp://127.0.0.1/hook")["webhook_url"]
        assert "at most 2048" in issues(T2V, webhook_url="http://127.0.0.1/" + "a" * 2040)["webhook_url"]
    finally:
        monkeypatch.delenv("LOCAL_ALLOW_PRIVATE_WEBHOOKS")
        reset_settings()


def test_settings_are_not_read_for_a_public_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> bool:
        raise AssertionError("settings read")

    monkeypatch.setattr(request_module, "allow_private_webhooks", boom)
    assert ok(T2V, webhook_url="https://example.com/h").webhook_url


# ---- metadata and provider ----------------------------------------------------------------------------


def test_metadata_limits() -> None:
    assert len(ok(T2V, metadata={f"k{n}": "v" * 256 for n in range(20)}).metadata) == 20
    assert issues(T2V, metadata={f"k{n}": "v" for n in range(21)}) == {"metadata": "at most 20 keys, got 21"}
    assert issues(T2V, metadata={"campaign": "v" * 257}) == {
        "metadata.campaign": "must be at most 256 characters, got 257"
    }
    assert issues(T2V, metadata={"k" * 65: "v"})["metadata"].startswith(
        "keys must be 1-64 characters, got 65"
    )
    assert issues(T2V, metadata={"campaign": 3}) == {"metadata.campaign": "must be a string, got integer"}


def test_provider_pin() -> None:
    assert ok(T2V, provider="evolink").provider == "evolink"
    assert ok(T2V, provider="evolink").model_dump(mode="json")["provider"] == "evolink"
    assert issues(T2V, provider="openai") == {
        "provider": "must be one of kling, evolink, kling3api, got 'openai'"
    }


# ---- error shape ---------------------------------------------------------------------------------------


def test_many_issues_in_one_go_without_pydantic_noise() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_generation_request({
            "mode": "image-to-video", "first_frame": "http://x.io/a.jpg", "duration": "five",
            "video": {"url": VID, "volume": 3}, "colour": "red",
        })  # fmt: skip
    error = caught.value
    assert {d.field: d.issue for d in error.details} == {
        "duration": "must be an integer, got string",
        "first_frame": "must be an https:// or s3://bucket/key URL, got http://",
        "video.volume": "unknown field",
        "colour": "unknown field",
    }
    assert error.code == "validation_error"
    assert error.message == "invalid request: duration: must be an integer, got string (and 3 more)"
    for detail in error.details:
        assert "pydantic" not in detail.issue
        assert "input_value" not in detail.issue
        assert "Value error" not in detail.issue


def test_cross_field_rules_are_collected_together() -> None:
    found = issues(EDIT, sound=True, first_frame=IMG, prompt=None, model="kling-3.0", cfg_scale=0.3)
    assert set(found) == {"sound", "first_frame", "prompt", "mode"}


@pytest.mark.parametrize(("body", "expected"), [
    ([1, 2], {"body": "must be an object, got array"}),
    ({}, {"mode": "required"}),
    ({"mode": "image-to-videos"}, {"mode": "must be one of 'text-to-video', 'image-to-video', 'reference-to-video' or 'video-edit', got 'image-to-videos'"}),
])  # fmt: skip
def test_body_shape(body: Any, expected: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_generation_request(body)
    assert {d.field: d.issue for d in caught.value.details} == expected


# ---- helpers for adapters and pricing ------------------------------------------------------------------


def test_helpers() -> None:
    request = ok(I2V, end_frame=IMG)
    assert (request.has_video_input, request.image_count, request.is_multi_shot) == (False, 2, False)
    assert request.video_refer_type is None
    assert request.effective_duration == 5
    assert ok(T2V, duration=3).effective_duration == 3


@pytest.mark.parametrize(("seconds", "billed"), [(None, None), (3.2, 3), (7.5, 8), (9.49, 9)])
def test_video_edit_bills_the_input_length(seconds: float | None, billed: int | None) -> None:
    assert ok(EDIT, video={"url": VID, "duration_s": seconds}).effective_duration == billed
