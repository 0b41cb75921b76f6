"""Keys of uploaded inputs: safe, and typed by the extension the input checks read."""

from __future__ import annotations

import pytest

from kling_pipeline.domain.upload import max_bytes, object_name


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("portrait.png", "image/png", "portrait.png"),
        ("Photo 1.JPEG", "image/jpeg", "Photo-1.jpg"),
        ("../../etc/passwd", "image/png", "passwd.png"),
        ("C:\\Users\\me\\clip.MOV", "video/quicktime", "clip.mov"),
        ("clip.mp4", "image/png", "clip.mp4.png"),
        ("...", "video/mp4", "input.mp4"),
    ],
)
def test_object_name(filename: str, content_type: str, expected: str) -> None:
    assert object_name(filename, content_type) == expected


def test_limits_follow_rules_5_and_8() -> None:
    assert max_bytes("image/png") == 10 * 1024 * 1024
    assert max_bytes("video/mp4") == 200 * 1024 * 1024
