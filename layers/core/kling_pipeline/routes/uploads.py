"""`POST /v1/uploads`: a presigned S3 POST for one input file (see `services.input_uploads`)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from kling_pipeline.domain.upload import UploadRequest
from kling_pipeline.routes.contract import BODY_ERRORS, UploadTicket, responses
from kling_pipeline.routes.tenant import Tenant
from kling_pipeline.services.input_uploads import create_upload

router = Router()  # type: ignore[no-untyped-call]


@router.post(
    "/v1/uploads",
    summary="Upload an input file (image or video) straight to S3",
    description="Answers a presigned POST: send `fields` and then the file as multipart/form-data to `url` "
    "(the policy pins type and size: images ≤ 10 MB, videos ≤ 200 MB), then use `s3_uri` as an input.",
    tags=["uploads"],
    responses=responses(200, "Where and how to send the file.", *BODY_ERRORS),
)
def post_upload(request: Annotated[UploadRequest, Body()], tenant_id: Tenant) -> UploadTicket:
    return UploadTicket.model_validate(create_upload(request, tenant_id=tenant_id))
