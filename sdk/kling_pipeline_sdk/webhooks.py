"""`verify_webhook`: check a Standard Webhooks signature (https://www.standardwebhooks.com/).

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 under the base64 key of a
`whsec_…` secret; `webhook-signature` holds one or more space-separated `v1,<base64>` signatures. A
timestamp more than `tolerance_s` away from now is refused so a captured request cannot be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from kling_pipeline_sdk.errors import WebhookVerificationError
from kling_pipeline_sdk.models import WebhookEvent

DEFAULT_TOLERANCE_S = 300


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> WebhookEvent:
    """The event in `body` if its signature is valid for `secret`; raises `WebhookVerificationError`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (webhook_id and timestamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - sent_at) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    raw = body.encode() if isinstance(body, str) else body
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise WebhookVerificationError("the secret is not a whsec_ base64 key") from None
    signed = f"{webhook_id}.{timestamp}.".encode() + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return WebhookEvent.model_validate(json.loads(raw))
    raise WebhookVerificationError("no signature matches")
