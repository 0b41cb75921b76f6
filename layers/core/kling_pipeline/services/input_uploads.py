"""Presigned uploads of inputs (`POST /v1/uploads`): a local file becomes an `s3://` input.

The signed policy pins the key, the content type and the size range, so the browser or SDK can send the
bytes straight to S3 (no 10 MB API Gateway limit, no bytes through Lambda) and S3 refuses anything else.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kling_pipeline import aws
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import utcnow
from kling_pipeline.domain.upload import UploadRequest, max_bytes, object_name
from kling_pipeline.errors import InvalidInput
from kling_pipeline.ids import new_upload_id
from kling_pipeline.observability import logger
from kling_pipeline.services.s3_keys import INPUTS_PREFIX

UPLOAD_TTL = timedelta(minutes=15)


def create_upload(request: UploadRequest, *, tenant_id: str) -> dict[str, Any]:
    """The presigned POST (url + form fields), the `s3://` URI it creates, and its limits."""
    limit = max_bytes(request.content_type)
    if request.size_bytes is not None and request.size_bytes > limit:
        raise InvalidInput.for_field(
            "size_bytes", f"is {request.size_bytes} bytes; the maximum for {request.content_type} is {limit}"
        )
    bucket = get_settings().bucket_name
    key = (
        f"{INPUTS_PREFIX}{tenant_id}/{new_upload_id()}/{object_name(request.filename, request.content_type)}"
    )
    post = aws.s3().generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": request.content_type},
        Conditions=[{"Content-Type": request.content_type}, ["content-length-range", 1, limit]],
        ExpiresIn=int(UPLOAD_TTL.total_seconds()),
    )
    logger.info("upload presigned", extra={"key": key, "content_type": request.content_type})
    return {
        "url": post["url"],
        "fields": post["fields"],
        "s3_uri": f"s3://{bucket}/{key}",
        "content_type": request.content_type,
        "max_bytes": limit,
        "expires_at": utcnow() + UPLOAD_TTL,
    }
