"""Streaming a provider video into S3 (MediaStore.store_video) against moto: the bytes arrive whole and in
order whatever the chunking, as one PutObject below a part and as parts above, through a few reused part
buffers."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator

import boto3
import pytest

from kling_local.mp4gen import make_mp4
from kling_pipeline.store import media
from kling_pipeline.store.media import PART_SIZE, get_media_store


def padded_mp4(size: int) -> bytes:
    """A valid MP4 grown to `size` bytes by a trailing `free` box (as a long provider video would be)."""
    video = make_mp4(320, 240, 1.0).read_bytes()
    pad = size - len(video)
    return video + struct.pack(">I4s", pad, b"free") + bytes(pad - 8)


def chunked(data: bytes, sizes: tuple[int, ...]) -> Iterator[bytes]:
    """`data` in chunks of varying sizes, so part boundaries fall inside chunks."""
    offset, index = 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        yield data[offset : offset + size]
        offset, index = offset + size, index + 1


@pytest.mark.parametrize("size", [PART_SIZE // 3, 3 * PART_SIZE + 12345])
def test_a_video_arrives_whole_whatever_its_size_and_chunking(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    allocated: list[int] = []
    real_bytearray = bytearray

    def counted(*args: object) -> bytearray:  # part buffers are allocated once and reused
        allocated.append(1)
        return real_bytearray(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(media, "bytearray", counted, raising=False)
    data = padded_mp4(size)

    stored = get_media_store().store_video(
        "outputs/t/g/video-1.mp4", chunked(data, (65536, 1_000_003)), source="x"
    )

    got = boto3.client("s3").get_object(Bucket="media", Key="outputs/t/g/video-1.mp4")
    body = got["Body"].read()
    parts = -(-size // PART_SIZE)
    assert got["ETag"].strip('"').endswith(f"-{parts}") if parts > 1 else "-" not in got["ETag"]
    assert body == data and stored.bytes == size and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert len(allocated) <= media.PARTS_IN_FLIGHT + 1
    uploads = boto3.client("s3").list_multipart_uploads(Bucket="media").get("Uploads", [])
    assert uploads == []
