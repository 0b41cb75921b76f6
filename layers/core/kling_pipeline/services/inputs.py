"""Input media checked from their headers before anything is spent (DESIGN.md §5 rules 5 and 8).

`s3://` inputs are read by ranged S3 GETs and handed out as presigned URLs; only objects in the stack's own
bucket that belong to the caller's tenant (`s3_keys.owner_of`) are accepted, so one tenant can never feed
another tenant's object to a provider. `https://` inputs (and, locally, `http://` on loopback) are read by
ranged GETs through the SSRF guard within one time and byte budget per request (`remote_inputs`). Either
way a 100x100 image or a 2-second clip is a field error before any provider call, and a video edit is
quoted on its input's measured length.
"""

from __future__ import annotations

from collections.abc import Iterable

from kling_pipeline.config import get_settings
from kling_pipeline.domain.media import RangeReader, check_image, check_video, probe_image, probe_video
from kling_pipeline.domain.request import GenerationRequest
from kling_pipeline.errors import FieldIssue, InvalidInput
from kling_pipeline.services.remote_inputs import ProbeBudget, open_url
from kling_pipeline.services.s3_keys import owner_of
from kling_pipeline.store.media import get_media_store


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def presigned(url: str) -> str:
    """`url` as a provider can fetch it: an s3:// input becomes a short-lived presigned GET URL."""
    if not url.startswith("s3://"):
        return url
    return get_media_store().presign_get(*split_s3_uri(url), get_settings().presign_ttl_s)


def check_inputs(request: GenerationRequest, *, tenant_id: str) -> GenerationRequest:
    """Probe every input (rules 5 and 8); returns the request with the input video's measured length."""
    budget = ProbeBudget.from_settings()
    images = [("first_frame", request.first_frame), ("end_frame", request.end_frame)]
    images += [(f"reference_images[{index}]", url) for index, url in enumerate(request.reference_images)]
    issues = _image_issues([(name, url) for name, url in images if url], tenant_id, budget)
    video = request.video
    if video is not None:
        try:
            reader = _reader("video.url", video.url, tenant_id, budget)
            info = probe_video(reader, field="video.url")
        except InvalidInput as exc:
            issues += exc.details
        else:
            issues += check_video(info, "video.url")
            if not issues:
                measured = video.model_copy(update={"duration_s": round(info.duration_s, 3)})
                request = request.model_copy(update={"video": measured})
    _raise_if_any(issues)
    return request


def check_images(fields: Iterable[tuple[str, str]], *, tenant_id: str) -> None:
    """Rule 5 on the bytes of every image among `fields` (name, url)."""
    _raise_if_any(_image_issues(fields, tenant_id, ProbeBudget.from_settings()))


def with_presigned_inputs(request: GenerationRequest) -> GenerationRequest:
    """The request as a provider must see it: s3:// inputs replaced by short-lived presigned GET URLs."""
    update: dict[str, object] = {}
    for name in ("first_frame", "end_frame"):
        value = getattr(request, name)
        if value:
            update[name] = presigned(value)
    update["reference_images"] = [presigned(url) for url in request.reference_images]
    if request.video is not None:
        update["video"] = request.video.model_copy(update={"url": presigned(request.video.url)})
    return request.model_copy(update=update)


def _image_issues(fields: Iterable[tuple[str, str]], tenant_id: str, budget: ProbeBudget) -> list[FieldIssue]:
    issues: list[FieldIssue] = []
    for field, uri in fields:
        try:
            info = probe_image(_reader(field, uri, tenant_id, budget), field=field)
        except InvalidInput as exc:
            issues += exc.details
        else:
            issues += check_image(info, field)
    return issues


def _reader(field: str, uri: str, tenant_id: str, budget: ProbeBudget) -> RangeReader:
    """A ranged reader over the input; InvalidInput (for `field`) when it is not ours or not reachable."""
    if uri.startswith("s3://"):
        if (outside := _outside(field, uri, tenant_id)) is not None:
            raise InvalidInput(outside.issue, [outside])
        return get_media_store().reader(*split_s3_uri(uri), field)
    return open_url(uri, field, budget)


def _outside(field: str, uri: str, tenant_id: str) -> FieldIssue | None:
    """The issue when `uri` is not an object of `tenant_id` in the stack's bucket."""
    bucket = get_settings().bucket_name
    uri_bucket, key = split_s3_uri(uri)
    if uri_bucket == bucket and owner_of(key) == tenant_id:
        return None
    where = f"s3://{bucket}/inputs/{tenant_id}/ or your uploads/ prefix"
    return FieldIssue(field, f"s3:// inputs must be your own objects under {where}")


def _raise_if_any(issues: list[FieldIssue]) -> None:
    if issues:
        raise InvalidInput("; ".join(f"{issue.field}: {issue.issue}" for issue in issues), issues)
