"""Streaming a provider video into S3 (MediaStore.store_video) against moto: the bytes arrive whole and in
order whatever the chunking, as one PutObject below a part and as parts above, through a few reused part
buffers, each part checked by S3 against its CRC32; a failure anywhere leaves no object and no open upload."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

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


def test_every_part_carries_a_crc32_and_the_video_its_composite(pipeline_aws: None) -> None:
    """S3 checks each part against its CRC32 and keeps the composite (as boto3's `upload_file` does)."""
    data = padded_mp4(2 * PART_SIZE + 4321)

    get_media_store().store_video("outputs/t/g/video-1.mp4", chunked(data, (65536,)), source="x")

    parts = [data[offset : offset + PART_SIZE] for offset in range(0, len(data), PART_SIZE)]
    composite = zlib.crc32(b"".join(zlib.crc32(part).to_bytes(4, "big") for part in parts))
    attributes = boto3.client("s3").get_object_attributes(
        Bucket="media", Key="outputs/t/g/video-1.mp4", ObjectAttributes=["Checksum"]
    )["Checksum"]
    assert attributes["ChecksumType"] == "COMPOSITE"
    assert (
        attributes["ChecksumCRC32"].split("-")[0] == base64.b64encode(composite.to_bytes(4, "big")).decode()
    )


def broken_after(data: bytes, size: int) -> Iterator[bytes]:
    """The first `size` bytes of `data` in 64 KiB chunks, then the connection breaks."""
    yield from chunked(data[:size], (65536,))
    raise ConnectionResetError("connection reset by peer")


def test_a_stream_that_breaks_after_some_parts_leaves_no_object_and_no_open_upload(
    pipeline_aws: None,
) -> None:
    data = padded_mp4(5 * PART_SIZE)

    with pytest.raises(ConnectionResetError):
        get_media_store().store_video(
            "outputs/t/g/video-1.mp4", broken_after(data, 4 * PART_SIZE + 7), source="x"
        )

    s3 = boto3.client("s3")
    assert s3.list_objects_v2(Bucket="media").get("Contents", []) == []
    assert s3.list_multipart_uploads(Bucket="media").get("Uploads", []) == []


@pytest.mark.parametrize(("operation", "number"), [("CreateMultipartUpload", None), ("UploadPart", 2)])
def test_a_request_s3_refuses_fails_the_store_and_leaves_nothing(
    pipeline_aws: None, operation: str, number: int | None
) -> None:
    """The multipart upload is created in the background and parts finish in any order: a refusal of
    either still surfaces, and the upload is aborted."""
    store = get_media_store()
    refused: list[str] = []

    def refuse(params: dict[str, Any], **_: object) -> None:
        if params.get("PartNumber") == number:
            refused.append(operation)
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, operation)

    store._s3.meta.events.register(f"before-parameter-build.s3.{operation}", refuse)
    try:
        with pytest.raises(ClientError):
            store.store_video(
                "outputs/t/g/video-1.mp4", chunked(padded_mp4(4 * PART_SIZE), (65536,)), source="x"
            )
    finally:
        store._s3.meta.events.unregister(f"before-parameter-build.s3.{operation}", refuse)

    s3 = boto3.client("s3")
    assert refused == [operation]
    assert s3.list_objects_v2(Bucket="media").get("Contents", []) == []
    assert s3.list_multipart_uploads(Bucket="media").get("Uploads", []) == []
