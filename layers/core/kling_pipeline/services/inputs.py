"""`s3://` inputs: checked from their headers before anything is spent, handed out as presigned URLs.

Only objects in the stack's own bucket are accepted, and API callers only under their own
`inputs/<tenant>/` prefix, so one tenant can never feed another tenant's upload to a provider.
"""

from __future__ import annotations

from collections.abc import Sequence

from kling_pipeline.config import get_settings
from kling_pipeline.domain.media import check_image, check_video, probe_image, probe_video
from kling_pipeline.domain.request import GenerationRequest
from kling_pipeline.errors import FieldIssue, InvalidInput
from kling_pipeline.store.media import get_media_store


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _image_fields(request: GenerationRequest) -> list[tuple[str, str]]:
    fields = [("first_frame", request.first_frame), ("end_frame", request.end_frame)]
    fields += [(f"reference_images[{index}]", url) for index, url in enumerate(request.reference_images)]
    return [(name, url) for name, url in fields if url and url.startswith("s3://")]


def check_s3_inputs(request: GenerationRequest, *, allowed_prefixes: Sequence[str]) -> GenerationRequest:
    """Probe every s3:// input (rules 5 and 8); returns the request with the input video's length set."""
    bucket = get_settings().bucket_name
    media = get_media_store()
    issues: list[FieldIssue] = []

    def located(field: str, uri: str) -> tuple[str, str] | None:
        uri_bucket, key = split_s3_uri(uri)
        if uri_bucket != bucket or not any(key.startswith(prefix) for prefix in allowed_prefixes):
            where = " or ".join(f"s3://{bucket}/{prefix}" for prefix in allowed_prefixes)
            issues.append(FieldIssue(field, f"s3:// inputs must be under {where}"))
            return None
        return uri_bucket, key

    for field, uri in _image_fields(request):
        if (place := located(field, uri)) is not None:
            issues += check_image(probe_image(media.reader(*place, field), field=field), field)
    video = request.video
    if video is not None and video.url.startswith("s3://") and (place := located("video.url", video.url)):
        info = probe_video(media.reader(*place, "video.url"), field="video.url")
        issues += check_video(info, "video.url")
        if not issues:
            measured = video.model_copy(update={"duration_s": round(info.duration_s, 3)})
            request = request.model_copy(update={"video": measured})
    if issues:
        raise InvalidInput("; ".join(f"{issue.field}: {issue.issue}" for issue in issues), issues)
    return request


def with_presigned_inputs(request: GenerationRequest) -> GenerationRequest:
    """The request as a provider must see it: s3:// inputs replaced by short-lived presigned GET URLs."""
    media = get_media_store()
    ttl = get_settings().presign_ttl_s

    def sign(url: str) -> str:
        return media.presign_get(*split_s3_uri(url), ttl) if url.startswith("s3://") else url

    update: dict[str, object] = {}
    for name in ("first_frame", "end_frame"):
        value = getattr(request, name)
        if value:
            update[name] = sign(value)
    update["reference_images"] = [sign(url) for url in request.reference_images]
    if request.video is not None:
        update["video"] = request.video.model_copy(update={"url": sign(request.video.url)})
    return request.model_copy(update=update)
