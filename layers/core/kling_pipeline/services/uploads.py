"""S3 uploads → generations (DESIGN.md §6.5); the behaviour is documented in docs/integrations.md.

The bucket notifies `UploadsQueue` of every object created under `uploads/`; each SQS message body is an
S3 event notification, the `s3:TestEvent` S3 sends when notifications are configured, or our own delayed
`upload-recheck` message. What an object does depends on its name:

- `<stem>.jpg|jpeg|png` — image-to-video with the image as first frame (reference-to-video puts it in
  `reference_images`); `<stem>.mp4|mov` — video-edit, or reference-to-video (`refer_type=feature`).
- `<stem>.json` (or `<stem>.<ext>.json`) — the sidecar job spec of that media: any field of the API body.
- `<name>.jsonl` — a job file: one full API body per line, one generation per line.
- `*.generation.json` / `*.error.json` — results we write next to the upload; ignored (no loops).

A job is one media object version (bucket, key, version id, ETag). Its spec is the sidecar, else object
metadata (`x-amz-meta-prompt`, `x-amz-meta-duration`, ...), else the stack's defaults after waiting
`UPLOAD_SIDECAR_GRACE_S` for a sidecar (a delayed re-check message). A sidecar arriving after its media
runs the media's job; one arriving first is found by the media's notification. Every path goes through
`triggers.run_claimed`, so duplicates, re-checks and races never create a second generation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.header import decode_header, make_header
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from pydantic import BaseModel

from kling_pipeline import aws, messaging
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation
from kling_pipeline.domain.request import Mode
from kling_pipeline.domain.validation import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, JsonTooDeep, load_json
from kling_pipeline.errors import InvalidInput
from kling_pipeline.observability import logger, metrics
from kling_pipeline.services.generations import create_generation
from kling_pipeline.services.s3_keys import UPLOADS_PREFIX, tenant_for
from kling_pipeline.services.triggers import (
    JobInProgress,
    JobOutcome,
    error_details,
    run_claimed,
    with_trigger_defaults,
)

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

RESULT_SUFFIX = ".generation.json"
ERROR_SUFFIX = ".error.json"
CLAIM_KIND = "UPLOAD"
TEST_EVENT = "s3:TestEvent"
MAX_SIDECAR_BYTES = 256 * 1024
MAX_JOB_FILE_BYTES = 5 * 1024 * 1024
MAX_JOB_FILE_LINES = 1000
METADATA_MAX_CHARS = 256  # a request's metadata values (DESIGN.md §4)
# Object metadata (`x-amz-meta-<field>`) that may carry the job spec: the API body's scalar fields.
METADATA_SPEC_FIELDS = frozenset(
    {
        "model",
        "mode",
        "prompt",
        "negative_prompt",
        "duration",
        "aspect_ratio",
        "quality",
        "sound",
        "cfg_scale",
        "watermark",
        "provider",
        "webhook_url",
    }
)
# Without a first frame reference-to-video must name its shape; uploads default to landscape.
DEFAULT_REFERENCE_ASPECT_RATIO = "16:9"


class ObjectRole(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    SIDECAR = "sidecar"
    JOB_FILE = "job_file"


class UploadedObject(BaseModel):
    """One version of one object; `identity` is the job key of a media upload."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def version_tag(self) -> str:
        """What tells this upload from an earlier one at the same key: its version id, else its ETag."""
        return self.version_id or self.etag

    @property
    def identity(self) -> str:
        return f"{self.bucket}/{self.key}#{self.version_id or 'null'}#{self.etag}"


class RecheckMessage(BaseModel):
    """Sent to UploadsQueue with a delay: "has this media's sidecar arrived? if not, run with defaults"."""

    kind: Literal["upload-recheck"] = "upload-recheck"
    object: UploadedObject


@dataclass(frozen=True)
class Sidecar:
    key: str
    spec: dict[str, Any] | None
    problem: str | None = None


def role_of(key: str) -> ObjectRole | None:
    """What an object under uploads/ is, by name; None for what we ignore (our results, other files)."""
    if not key.startswith(UPLOADS_PREFIX) or key.endswith("/"):
        return None
    lowered = key.lower()
    if lowered.endswith((RESULT_SUFFIX, ERROR_SUFFIX)):
        return None
    extension = lowered.rsplit(".", 1)[-1] if "." in key.rsplit("/", 1)[-1] else ""
    if extension in IMAGE_EXTENSIONS:
        return ObjectRole.IMAGE
    if extension in VIDEO_EXTENSIONS:
        return ObjectRole.VIDEO
    if extension == "json":
        return ObjectRole.SIDECAR
    if extension == "jsonl":
        return ObjectRole.JOB_FILE
    return None


def metadata_spec(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The job spec in object metadata: `x-amz-meta-prompt`, `x-amz-meta-aspect-ratio`, ...

    Values stay text; the request model reads "5" as 5 and "true" as true. Non-ASCII values arrive
    RFC 2047-encoded (`=?UTF-8?B?...?=`, what SDKs send for them) and are decoded.
    """
    spec: dict[str, Any] = {}
    for name, value in metadata.items():
        field = name.lower().replace("-", "_")
        if field in METADATA_SPEC_FIELDS:
            spec[field] = str(make_header(decode_header(value))) if value.startswith("=?") else value
    return spec


def media_body(
    upload: UploadedObject, role: ObjectRole, spec: Mapping[str, Any], *, line: int | None = None
) -> dict[str, Any]:
    """The API body of a media job: the spec, the upload in its input slot, the stack's defaults."""
    settings = get_settings()
    body = dict(spec)
    mode = body.get("mode") or (Mode.IMAGE_TO_VIDEO if role is ObjectRole.IMAGE else Mode.VIDEO_EDIT).value
    body["mode"] = mode
    if role is ObjectRole.IMAGE:
        if mode == Mode.REFERENCE_TO_VIDEO:
            given = body.get("reference_images")
            body["reference_images"] = [upload.uri, *(given if isinstance(given, list) else [])]
        else:
            body["first_frame"] = upload.uri
        default_prompt: str | None = settings.default_prompt
    else:
        given_video = body.get("video")
        body["video"] = {**(given_video if isinstance(given_video, dict) else {}), "url": upload.uri}
        default_prompt = settings.default_video_prompt
    if mode == Mode.REFERENCE_TO_VIDEO:
        body.setdefault("aspect_ratio", DEFAULT_REFERENCE_ASPECT_RATIO)
    if default_prompt and "prompt" not in body and not body.get("shots"):
        body["prompt"] = default_prompt
    return _with_source(with_trigger_defaults(body), upload, line)


def _with_source(body: dict[str, Any], upload: UploadedObject, line: int | None) -> dict[str, Any]:
    """Record where the job came from in `metadata` (source_key, source_version, source_line)."""
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        return body  # reported by validation, field by field
    tagged = {**metadata, "source_key": upload.uri[-METADATA_MAX_CHARS:]}
    tagged["source_version"] = upload.version_tag[:METADATA_MAX_CHARS]
    if line is not None:
        tagged["source_line"] = str(line)
    return {**body, "metadata": tagged}


def _is_job_of(upload: UploadedObject, line: int | None) -> Callable[[Generation], bool]:
    """Recognises the generation of (upload, line) among a tenant's generations (claim recovery)."""

    def matches(generation: Generation) -> bool:
        metadata = generation.metadata
        return (
            generation.source == upload.uri
            and metadata.get("source_version") == upload.version_tag[:METADATA_MAX_CHARS]
            and metadata.get("source_line") == (None if line is None else str(line))
        )

    return matches


class UploadTrigger:
    """Handles one UploadsQueue message; `queue_arn` is where re-checks go when UPLOADS_QUEUE_URL is unset."""

    def __init__(self, client: S3Client, *, queue_arn: str | None = None) -> None:
        self._s3 = client
        self._queue_arn = queue_arn
        self._settings = get_settings()

    # ---- entry ------------------------------------------------------------------------------------------

    def handle(self, body: str) -> None:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("an UploadsQueue message must be a JSON object")
        if payload.get("Event") == TEST_EVENT:
            logger.info("S3 test event", extra={"bucket": payload.get("Bucket")})
            return
        if payload.get("kind") == "upload-recheck":
            self.media_arrived(RecheckMessage.model_validate(payload).object, waited=True)
            return
        for record in payload.get("Records") or []:
            if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                continue
            s3 = record["s3"]
            upload = UploadedObject(
                bucket=s3["bucket"]["name"],
                key=unquote_plus(s3["object"]["key"]),
                version_id=s3["object"].get("versionId") or None,
                etag=str(s3["object"].get("eTag") or "").strip('"'),
            )
            self.object_created(upload)

    def object_created(self, upload: UploadedObject) -> None:
        role = role_of(upload.key)
        if role is None:
            logger.debug("not a job object", extra={"key": upload.key})
            return
        if upload.bucket != self._settings.bucket_name:
            logger.warning("notification from another bucket ignored", extra={"bucket": upload.bucket})
            return
        logger.append_keys(upload=upload.uri)
        if role in (ObjectRole.IMAGE, ObjectRole.VIDEO):
            self.media_arrived(upload, waited=False)
        elif role is ObjectRole.SIDECAR:
            self.sidecar_arrived(upload)
        else:
            self.job_file_arrived(upload)

    # ---- media and sidecars -----------------------------------------------------------------------------

    def media_arrived(self, upload: UploadedObject, *, waited: bool) -> None:
        role = role_of(upload.key)
        if role not in (ObjectRole.IMAGE, ObjectRole.VIDEO):
            return
        media_role: ObjectRole = role
        head = self._head(upload)
        if head is None:
            logger.info("upload is gone; nothing to do", extra={"key": upload.key})
            return
        upload = upload.model_copy(
            update={
                "version_id": upload.version_id or _version_of(head),
                "etag": upload.etag or str(head.get("ETag", "")).strip('"'),
            }
        )
        sidecar = self._find_sidecar(upload.key)
        from_metadata = metadata_spec(head.get("Metadata") or {})
        grace = self._settings.upload_sidecar_grace_s
        if sidecar is None and not from_metadata and not waited and grace > 0:
            self._recheck_later(upload, grace)
            return
        tenant = tenant_for(upload.key)

        def create() -> Generation:
            if sidecar is not None and sidecar.problem is not None:
                raise InvalidInput.for_field(f"sidecar {sidecar.key}", sidecar.problem)
            spec = {**from_metadata, **((sidecar.spec if sidecar else None) or {})}
            body = media_body(upload, media_role, spec)
            return create_generation(body, tenant_id=tenant, source=upload.uri)

        outcome = run_claimed(
            CLAIM_KIND,
            upload.identity,
            tenant_id=tenant,
            create=create,
            matches=_is_job_of(upload, None),
            on_rejected=lambda error: self._write_error(upload, error),
        )
        self._record(upload, outcome)

    def sidecar_arrived(self, sidecar: UploadedObject) -> None:
        """Run the job of the sidecar's media if it is already there; else its arrival will find us."""
        media_keys = self._media_for_sidecar(sidecar.key)
        if not media_keys:
            logger.info("sidecar waits for its media", extra={"key": sidecar.key})
            return
        for key in media_keys:
            self.media_arrived(UploadedObject(bucket=sidecar.bucket, key=key), waited=True)

    def _find_sidecar(self, media_key: str) -> Sidecar | None:
        """`<stem>.<ext>.json`, else `<stem>.json`."""
        stem = media_key.rsplit(".", 1)[0]
        for key in (f"{media_key}.json", f"{stem}.json"):
            try:
                obj = self._s3.get_object(Bucket=self._settings.bucket_name, Key=key)
            except ClientError as exc:
                if _is_missing(exc):
                    continue
                raise
            if int(obj.get("ContentLength", 0)) > MAX_SIDECAR_BYTES:
                obj["Body"].close()
                return Sidecar(key, None, f"must be at most {MAX_SIDECAR_BYTES} bytes")
            try:
                spec = load_json(obj["Body"].read())
            except JsonTooDeep as exc:
                return Sidecar(key, None, str(exc))
            except ValueError:
                return Sidecar(key, None, "is not valid JSON")
            if not isinstance(spec, dict):
                return Sidecar(key, None, "must be a JSON object (fields of the API body)")
            return Sidecar(key, spec)
        return None

    def _media_for_sidecar(self, sidecar_key: str) -> list[str]:
        stem = sidecar_key[: -len(".json")]
        found = [stem] if role_of(stem) in (ObjectRole.IMAGE, ObjectRole.VIDEO) and self._exists(stem) else []
        listing = self._s3.list_objects_v2(Bucket=self._settings.bucket_name, Prefix=f"{stem}.", MaxKeys=100)
        for item in listing.get("Contents", []):
            key = item["Key"]
            rest = key[len(stem) + 1 :]
            if "." not in rest and role_of(key) in (ObjectRole.IMAGE, ObjectRole.VIDEO):
                found.append(key)
        return found

    # ---- job files --------------------------------------------------------------------------------------

    def job_file_arrived(self, upload: UploadedObject) -> None:
        """One generation per line; a bad line is reported in the result file and stops nothing."""
        try:
            obj = self._s3.get_object(
                Bucket=upload.bucket,
                Key=upload.key,
                **_version_args(upload.version_id),
            )
        except ClientError as exc:
            if _is_missing(exc):
                logger.info("job file is gone", extra={"key": upload.key})
                return
            raise
        upload = upload.model_copy(
            update={
                "version_id": upload.version_id or obj.get("VersionId") or None,
                "etag": upload.etag or str(obj.get("ETag", "")).strip('"'),
            }
        )
        size = int(obj.get("ContentLength", 0))
        if size > MAX_JOB_FILE_BYTES:
            obj["Body"].close()
            self._write_error(upload, _file_error(f"must be at most {MAX_JOB_FILE_BYTES} bytes, got {size}"))
            return
        try:
            numbered = _job_lines(obj["Body"])
        except UnicodeDecodeError:
            self._write_error(upload, _file_error("must be UTF-8 text, one JSON object per line"))
            return
        except _TooManyJobs:
            limit = MAX_JOB_FILE_LINES
            issue = f"at most {limit} jobs per file; line {limit + 1} is one too many"
            self._write_error(upload, _file_error(issue))
            return
        tenant = tenant_for(upload.key)
        results: list[dict[str, Any]] = []
        unfinished: list[int] = []
        for number, line in numbered:
            try:
                outcome = self._run_line(upload, number, line, tenant)
            except JobInProgress:
                results.append({"line": number, "status": "in_progress"})
                unfinished.append(number)
                continue
            except Exception:
                logger.exception("job file line failed; retried with the message", extra={"line": number})
                results.append({"line": number, "status": "retrying"})
                unfinished.append(number)
                continue
            results.append({"line": number, **_outcome_fields(outcome)})
        replayed_only = not unfinished and all("replayed" in item for item in results)
        generations = [{k: v for k, v in item.items() if k != "replayed"} for item in results]
        self._put_result(upload, RESULT_SUFFIX, {"generations": generations}, replayed=replayed_only)
        if unfinished:
            raise JobInProgress(f"lines {unfinished} of {upload.uri} are not finished yet")

    def _run_line(self, upload: UploadedObject, number: int, line: str, tenant: str) -> JobOutcome:
        def create() -> Generation:
            try:
                body = load_json(line)
            except JsonTooDeep as exc:
                raise InvalidInput.for_field(f"line {number}", str(exc)) from None
            except ValueError:
                raise InvalidInput.for_field(f"line {number}", "is not valid JSON") from None
            if not isinstance(body, dict):
                raise InvalidInput.for_field(f"line {number}", "must be a JSON object (an API body)")
            tagged = _with_source(with_trigger_defaults(body), upload, number)
            return create_generation(tagged, tenant_id=tenant, source=upload.uri)

        return run_claimed(
            CLAIM_KIND,
            f"{upload.identity}#line={number}",
            tenant_id=tenant,
            create=create,
            matches=_is_job_of(upload, number),
        )

    # ---- results ----------------------------------------------------------------------------------------

    def _record(self, upload: UploadedObject, outcome: JobOutcome) -> None:
        """`<key>.generation.json` (the error file is written on rejection); a duplicate only repairs it."""
        if outcome.generation_id:
            logger.info(
                "upload job done",
                extra={"generation_id": outcome.generation_id, "replayed": outcome.replayed},
            )
            if not outcome.replayed:
                metrics.add_metric(name="UploadGenerationCreated", unit=MetricUnit.Count, value=1)
            fields = {"generation_id": outcome.generation_id}
            self._put_result(upload, RESULT_SUFFIX, fields, replayed=outcome.replayed)
        elif outcome.error and outcome.replayed:
            self._put_result(upload, ERROR_SUFFIX, {"error": outcome.error}, replayed=True)

    def _write_error(self, upload: UploadedObject, error: dict[str, Any]) -> None:
        logger.info(
            "upload rejected", extra={"code": error.get("code"), "error_message": error.get("message")}
        )
        self._put_result(upload, ERROR_SUFFIX, {"error": error}, replayed=False)

    def _put_result(
        self, upload: UploadedObject, suffix: str, fields: dict[str, Any], *, replayed: bool
    ) -> None:
        """Write `<key><suffix>`. A replayed outcome only fills a gap or completes its own version's file:
        it never overwrites the result of a newer upload at the same key."""
        key = upload.key + suffix
        document = {"source": upload.uri, "version_id": upload.version_id, "etag": upload.etag, **fields}
        if replayed:
            existing = self._read_json(key)
            if existing is not None and (
                existing == document
                or (existing.get("version_id"), existing.get("etag")) != (upload.version_id, upload.etag)
            ):
                return
        self._put_json(key, document)

    def _read_json(self, key: str) -> dict[str, Any] | None:
        try:
            body = self._s3.get_object(Bucket=self._settings.bucket_name, Key=key)["Body"].read()
            document = json.loads(body)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    def _put_json(self, key: str, document: dict[str, Any]) -> None:
        self._s3.put_object(
            Bucket=self._settings.bucket_name,
            Key=key,
            Body=json.dumps(document, indent=2).encode(),
            ContentType="application/json",
        )

    # ---- S3 and SQS helpers -----------------------------------------------------------------------------

    def _head(self, upload: UploadedObject) -> dict[str, Any] | None:
        try:
            return dict(
                self._s3.head_object(Bucket=upload.bucket, Key=upload.key, **_version_args(upload.version_id))
            )
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise

    def _exists(self, key: str) -> bool:
        return self._head(UploadedObject(bucket=self._settings.bucket_name, key=key)) is not None

    def _recheck_later(self, upload: UploadedObject, delay_s: int) -> None:
        queue_url = self._settings.uploads_queue_url or self._queue_url_from_arn()
        messaging.send(queue_url, RecheckMessage(object=upload), delay_s=delay_s)
        metrics.add_metric(name="UploadWaitingForSidecar", unit=MetricUnit.Count, value=1)
        logger.info(
            "no job spec yet: waiting for a sidecar", extra={"key": upload.key, "recheck_in_s": delay_s}
        )

    def _queue_url_from_arn(self) -> str:
        if not self._queue_arn:
            raise RuntimeError("UPLOADS_QUEUE_URL is not configured")
        account, name = self._queue_arn.split(":")[4:6]
        return aws.sqs().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]


def handle_upload_message(body: str, *, queue_arn: str | None = None) -> None:
    """One UploadsQueue message (S3 notification, S3 test event or re-check)."""
    UploadTrigger(aws.s3(), queue_arn=queue_arn).handle(body)


class _TooManyJobs(Exception):
    """A job file has a line past `MAX_JOB_FILE_LINES`; raised the moment it is seen."""


def _job_lines(body: StreamingBody) -> list[tuple[int, str]]:
    """The non-blank lines of a job file, numbered from 1, read as a stream and abandoned at the first
    line past the limit: a file of a million tiny lines never becomes a million strings."""
    numbered: list[tuple[int, str]] = []
    try:
        for number, raw in enumerate(_split_lines(body.iter_chunks(64 * 1024)), 1):
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            if not line.strip():
                continue
            if len(numbered) == MAX_JOB_FILE_LINES:
                raise _TooManyJobs
            numbered.append((number, line))
    finally:
        body.close()
    return numbered


def _split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines of a byte stream in linear time (botocore's `iter_lines` re-copies a long line per chunk)."""
    pending = bytearray()
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            pending += chunk[start:end]
            yield bytes(pending).rstrip(b"\r")
            pending.clear()
            start = end + 1
        pending += chunk[start:]
    if pending:
        yield bytes(pending).rstrip(b"\r")


def _outcome_fields(outcome: JobOutcome) -> dict[str, Any]:
    fields: dict[str, Any] = (
        {"generation_id": outcome.generation_id} if outcome.generation_id else {"error": outcome.error}
    )
    if outcome.replayed:
        fields["replayed"] = True
    return fields


def _file_error(issue: str) -> dict[str, Any]:
    return error_details(InvalidInput.for_field("file", issue))


def _version_args(version_id: str | None) -> dict[str, Any]:
    return {"VersionId": version_id} if version_id else {}


def _version_of(head: Mapping[str, Any]) -> str | None:
    version = head.get("VersionId")
    return None if version in (None, "", "null") else str(version)


def _is_missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchVersion") or status == 404
