"""The media bucket: stream provider downloads into S3, presign reads, probe inputs by ranged reads.

Ingest memory is bounded by a few multipart parts whatever the video size: chunks are hashed and
verified as they pass and flushed as parts of `PART_SIZE`, a few uploading while the download goes on.
Until `complete_multipart_upload` (or the one `put_object` of a video smaller than a part) succeeds no
object exists at the key, and any failure aborts the upload, so a crash never leaves a partial video.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

from kling_pipeline.domain.media import Mp4StreamVerifier, Mp4Summary
from kling_pipeline.errors import InvalidInput

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PART_SIZE = 8 * 1024 * 1024  # S3's minimum is 5 MiB; 8 MiB keeps part count low for 200 MiB videos
PARTS_IN_FLIGHT = 3  # parts uploading while the next one fills: 4 x 8 MiB buffers, whatever the size


@dataclass(frozen=True)
class StoredVideo:
    bucket: str
    key: str
    bytes: int
    sha256: str
    summary: Mp4Summary

    @property
    def s3_uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class MediaStore:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket

    def store_video(self, key: str, chunks: Iterable[bytes], *, source: str) -> StoredVideo:
        """Stream `chunks` to `key` as a verified MP4; raises (leaving nothing at `key`) on any failure.

        A video smaller than one part is stored with one PutObject (one request, not three); a larger one
        as a multipart upload started when its first part is full, with up to `PARTS_IN_FLIGHT` parts
        uploading while the download goes on. Chunks are copied into part buffers that are allocated once
        and reused (`_PartUploads.buffer`): memory is the same few parts for 64 MiB or 2 GiB, and the
        allocator is never asked for part-sized blocks again (freed and re-requested 8 MiB blocks were
        what made RSS grow with the video's size)."""
        digest = hashlib.sha256()
        verifier = Mp4StreamVerifier()
        parts = _PartUploads(self._s3, self.bucket, key, {"source": source[:1024]})
        buffer = parts.buffer()
        filled = total = 0
        try:
            for chunk in chunks:
                digest.update(chunk)
                verifier.feed(chunk)
                total += len(chunk)
                rest = memoryview(chunk)
                while rest:
                    take = min(len(rest), PART_SIZE - filled)
                    buffer[filled : filled + take] = rest[:take]
                    filled, rest = filled + take, rest[take:]
                    if filled == PART_SIZE:
                        parts.add(buffer)  # uploads it as it is; the buffer comes back when it is sent
                        buffer, filled = parts.buffer(), 0
            summary = verifier.finish()
            del buffer[filled:]  # the tail, as its own last part (no copy)
            parts.finish(buffer)
        except BaseException:
            parts.abort()
            raise
        return StoredVideo(self.bucket, key, total, digest.hexdigest(), summary)

    def abort_open_uploads(self, prefix: str) -> int:
        """Abort the multipart uploads under `prefix` a dead ingest left open (the bucket's lifecycle rule
        would take a day); returns how many."""
        listing = self._s3.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        uploads = listing.get("Uploads", [])
        for upload in uploads:
            self._s3.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        return len(uploads)

    def presign_get(self, bucket: str, key: str, ttl_s: int) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_s
        )

    def reader(self, bucket: str, key: str, field: str) -> S3RangeReader:
        """A ranged reader for header probing; a missing object is the caller's input error."""
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            raise InvalidInput.for_field(
                field, f"s3://{bucket}/{key} does not exist or is not readable"
            ) from exc
        return S3RangeReader(self._s3, bucket, key, int(head["ContentLength"]))


class _PartUploads:
    """The parts of one upload, sent by a few threads while the caller keeps reading into the next one.

    At most `PARTS_IN_FLIGHT` parts upload at once and one more is being filled: `buffer()` hands out one
    of those few `PART_SIZE` buffers, allocated on first need and reused as soon as any part is sent (not
    only the oldest: parts finish out of order). The multipart upload starts with the first full part, in
    the background, so the caller goes on downloading meanwhile; a video that never fills a part is one
    PutObject. Parts carry a CRC32 that S3 checks (each part, and the whole as a composite), as boto3's
    own `upload_file` does."""

    def __init__(self, client: S3Client, bucket: str, key: str, metadata: dict[str, str]) -> None:
        self._s3, self._bucket, self._key, self._metadata = client, bucket, key, metadata
        self._pool: ThreadPoolExecutor | None = None
        self._created: Future[str] | None = None  # the multipart upload's id
        self._pending: set[Future[tuple[CompletedPartTypeDef, bytearray]]] = set()
        self._done: list[CompletedPartTypeDef] = []
        self._spare: list[bytearray] = []  # buffers of sent parts, to fill again
        self._added = 0

    def buffer(self) -> bytearray:
        """A part buffer to fill: a sent part's if there is one, else a new one while fewer than all
        exist, else the buffer of the next part that is sent. A failed part raises here, as soon as it
        is known (the upload is aborted then)."""
        self._collect(future for future in self._pending if future.done())
        if not self._spare and len(self._pending) >= PARTS_IN_FLIGHT:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)
        return self._spare.pop() if self._spare else bytearray(PART_SIZE)

    def add(self, buffer: bytearray) -> None:
        """Upload a full part (the buffer is not touched again until `buffer()` hands it back)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
            self._created = self._pool.submit(self._create)  # queued first: no part waits on a queued create
        self._added += 1
        self._pending.add(self._pool.submit(self._upload, self._added, buffer))

    def _create(self) -> str:
        return self._s3.create_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            ContentType="video/mp4",
            Metadata=self._metadata,
            ChecksumAlgorithm="CRC32",
        )["UploadId"]

    def _upload(self, number: int, buffer: bytearray) -> tuple[CompletedPartTypeDef, bytearray]:
        assert self._created is not None
        response = self._s3.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._created.result(),
            PartNumber=number,
            Body=cast(bytes, buffer),  # botocore sends a bytearray as it is; its stubs only say bytes
            ChecksumAlgorithm="CRC32",
        )
        part: CompletedPartTypeDef = {
            "ETag": response["ETag"],
            "PartNumber": number,
            "ChecksumCRC32": response["ChecksumCRC32"],
        }
        return part, buffer

    def _collect(self, futures: Iterable[Future[tuple[CompletedPartTypeDef, bytearray]]]) -> None:
        """Record sent parts and keep their buffers; raises the failure of one that failed."""
        for future in list(futures):
            self._pending.discard(future)
            part, buffer = future.result()
            self._done.append(part)
            self._spare.append(buffer)

    def finish(self, tail: bytearray) -> None:
        """The last (partial) part, then complete; or the whole video as one PutObject."""
        if self._created is None:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self._key,
                Body=cast(bytes, tail),
                ContentType="video/mp4",
                Metadata=self._metadata,
            )
            return
        if tail:
            self.add(tail)
        self._collect(wait(self._pending).done)
        self._shutdown()
        self._s3.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._created.result(),
            MultipartUpload={"Parts": sorted(self._done, key=lambda part: part["PartNumber"])},
        )

    def abort(self) -> None:
        self._shutdown(cancel=True)
        if self._created is None or self._created.cancelled() or self._created.exception() is not None:
            return  # no multipart upload was created
        self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._created.result())

    def _shutdown(self, *, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)


class S3RangeReader:
    """`RangeReader` over an S3 object: every read is one ranged GET, so probes fetch headers only."""

    def __init__(self, client: S3Client, bucket: str, key: str, size: int) -> None:
        self._s3 = client
        self._bucket = bucket
        self._key = key
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self.size:
            return b""
        end = min(offset + length, self.size) - 1
        body = self._s3.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={offset}-{end}")["Body"]
        return body.read()


@cache
def get_media_store() -> MediaStore:
    from kling_pipeline import aws
    from kling_pipeline.config import get_settings

    return MediaStore(aws.s3(), get_settings().bucket_name)
