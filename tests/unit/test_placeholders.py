"""Prompt placeholders: both syntaxes parsed, checked against the request's inputs, rendered per provider."""

from __future__ import annotations

from typing import Any

import pytest

from kling_pipeline.domain.placeholders import (
    PlaceholderKind,
    ReferableInputs,
    find_placeholders,
    placeholder_issues,
    render,
)
from kling_pipeline.domain.request import parse_generation_request
from kling_pipeline.errors import InvalidInput

IMG = "https://cdn.example.com/a.png"
VID = "https://cdn.example.com/in.mp4"


@pytest.mark.parametrize(("text", "kind", "index"), [
    ("<<<image_1>>>", PlaceholderKind.IMAGE, 1), ("@Image2", PlaceholderKind.IMAGE, 2),
    ("<<<element_3>>>", PlaceholderKind.ELEMENT, 3), ("@Element1", PlaceholderKind.ELEMENT, 1),
    ("<<<video_1>>>", PlaceholderKind.VIDEO, 1), ("@Video1", PlaceholderKind.VIDEO, 1),
    ("@image12", PlaceholderKind.IMAGE, 12), ("<<<IMAGE_4>>>", PlaceholderKind.IMAGE, 4),
])  # fmt: skip
def test_both_syntaxes_are_parsed(text: str, kind: PlaceholderKind, index: int) -> None:
    [found] = find_placeholders(f"Start {text}, end.")
    assert (found.kind, found.index, found.written) == (kind, index, text)
    assert found.start == len("Start ")


@pytest.mark.parametrize("text", [
    "mail me@image1.com", "@Image1x", "@Imagery", "<<image_1>>>", "<<<image_>>>", "<<<picture_1>>>", "@@Image1",
])  # fmt: skip
def test_lookalikes_are_not_placeholders(text: str) -> None:
    assert find_placeholders(text) == []


def test_mixed_syntaxes_in_order() -> None:
    found = find_placeholders("@Element1 walks into <<<image_2>>> while @Video1 plays")
    assert [(p.kind.value, p.index) for p in found] == [("element", 1), ("image", 2), ("video", 1)]


@pytest.mark.parametrize(("syntax", "expected"), [
    ("kling", "<<<element_1>>> walks into <<<image_2>>>, then <<<video_1>>>. me@image1.com"),
    ("at", "@Element1 walks into @Image2, then @Video1. me@image1.com"),
])  # fmt: skip
def test_render(syntax: Any, expected: str) -> None:
    text = "@element1 walks into <<<image_2>>>, then @Video1. me@image1.com"
    assert render(text, syntax) == expected
    assert render(render(text, "at"), syntax) == expected  # rendering is stable across syntaxes


def test_render_without_placeholders_is_identity() -> None:
    assert render("A plain prompt", "kling") == "A plain prompt"


@pytest.mark.parametrize(("text", "inputs", "expected"), [
    ("@Image2 and <<<image_1>>>", ReferableInputs(images=2), []),
    ("@Image3", ReferableInputs(images=2), ["@Image3 refers to image 3, but there are 2 reference_images given (images are numbered from reference_images, starting at 1)"]),
    ("<<<element_1>>>", ReferableInputs(), ["<<<element_1>>> refers to element 1, but there are no elements given (elements are numbered from elements, starting at 1)"]),
    ("@Video1", ReferableInputs(), ["@Video1 refers to video 1, but no video is given"]),
    ("<<<video_2>>>", ReferableInputs(videos=1), ["<<<video_2>>> refers to video 2, but one video is given"]),
    ("@Image0", ReferableInputs(images=1), ["@Image0: placeholders are numbered from 1"]),
    ("@Image4 then <<<image_4>>> again", ReferableInputs(images=1), ["@Image4 refers to image 4, but there are 1 reference_images given (images are numbered from reference_images, starting at 1)"]),
])  # fmt: skip
def test_placeholder_issues(text: str, inputs: ReferableInputs, expected: list[str]) -> None:
    assert placeholder_issues(text, inputs) == expected


# ---- on the request ----------------------------------------------------------------------------------


def details(body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidInput) as caught:
        parse_generation_request(body)
    return {d.field: d.issue for d in caught.value.details}


def test_frames_are_not_numbered() -> None:
    body = {"mode": "image-to-video", "first_frame": IMG, "prompt": "@Image1 smiles"}
    assert details(body) == {
        "prompt": "@Image1 refers to image 1, but there are no reference_images given "
        "(images are numbered from reference_images, starting at 1)"
    }
    assert parse_generation_request({**body, "reference_images": [IMG]}).prompt == "@Image1 smiles"


def test_valid_placeholders_in_both_syntaxes() -> None:
    request = parse_generation_request({
        "mode": "reference-to-video", "aspect_ratio": "16:9", "reference_images": [IMG, IMG],
        "elements": [{"element_id": "1"}], "video": {"url": VID},
        "prompt": "@Image2 meets <<<element_1>>> in the style of <<<video_1>>>",
    })  # fmt: skip
    assert request.referable_inputs == ReferableInputs(images=2, elements=1, videos=1)


def test_shot_prompts_are_checked_on_their_own_field() -> None:
    body = {
        "mode": "image-to-video", "first_frame": IMG, "elements": [{"element_id": "1"}],
        "shots": [{"prompt": "<<<element_1>>> waves", "duration": 2}, {"prompt": "@Element2 runs", "duration": 3}],
    }  # fmt: skip
    assert details(body) == {
        "shots[1].prompt": "@Element2 refers to element 2, but there are 1 elements given "
        "(elements are numbered from elements, starting at 1)"
    }


def test_video_placeholder_in_video_edit() -> None:
    body = {"mode": "video-edit", "video": {"url": VID}, "prompt": "Put snow on <<<video_1>>>"}
    assert parse_generation_request(body).video_refer_type == "base"
    assert "no video is given" in details({"mode": "text-to-video", "prompt": "like @Video1"})["prompt"]


def test_several_missing_inputs_reported_together_on_one_field() -> None:
    issue = details({"mode": "text-to-video", "prompt": "@Image1 and @Element1"})["prompt"]
    assert "@Image1 refers to image 1" in issue
    assert "@Element1 refers to element 1" in issue
