"""Python client for the kling-pipeline API: submit, wait with progress, download, upload.

from kling_pipeline_sdk import Client
with Client() as client:                       # KLING_PIPELINE_URL, KLING_PIPELINE_API_KEY
    generation = client.create(mode="text-to-video", prompt="A lighthouse at dawn")
    generation = client.wait(generation.id, on_progress=print)
    client.download(generation, "out/")
"""

from kling_pipeline_sdk.async_client import AsyncClient
from kling_pipeline_sdk.client import Client
from kling_pipeline_sdk.errors import (
    ApiError,
    AuthenticationError,
    BudgetExceededError,
    ChecksumMismatchError,
    ConflictError,
    FieldDetail,
    InvalidRequestError,
    KlingPipelineError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from kling_pipeline_sdk.models import (
    TERMINAL,
    Cost,
    Delivery,
    Element,
    Estimate,
    Generation,
    Output,
    Problem,
    Quote,
    Redelivery,
    UploadTicket,
    Usage,
    WebhookEvent,
)
from kling_pipeline_sdk.webhooks import verify_webhook

__all__ = [
    "TERMINAL",
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "BudgetExceededError",
    "ChecksumMismatchError",
    "Client",
    "ConflictError",
    "Cost",
    "Delivery",
    "Element",
    "Estimate",
    "FieldDetail",
    "Generation",
    "InvalidRequestError",
    "KlingPipelineError",
    "NotFoundError",
    "Output",
    "Problem",
    "Quote",
    "RateLimitedError",
    "Redelivery",
    "ServerError",
    "UploadTicket",
    "Usage",
    "WaitTimeoutError",
    "WebhookEvent",
    "WebhookVerificationError",
    "verify_webhook",
]
