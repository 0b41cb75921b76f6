"""Standard Webhooks signatures (https://www.standardwebhooks.com), hand-rolled: it is one HMAC.

Each delivery carries three headers:

- `webhook-id`: stable across every retry and redelivery of the same message, so receivers can dedupe;
- `webhook-timestamp`: unix seconds at send time (receivers reject stale ones, which stops replays);
- `webhook-signature`: `v1,<base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))>`.

Tenant secrets are derived, not stored: `whsec_<base64(HMAC-SHA256(master, tenant_id))>`, where the master
is the stack's WEBHOOK_SIGNING_SECRET (Secrets Manager in AWS). Rotating the master rotates every
tenant's secret at once; tenants then fetch the new one from `GET /v1/webhooks/secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret


def tenant_secret(master: str, tenant_id: str) -> str:
    """The tenant's `whsec_…` secret, derived from the stack's master secret."""
    digest = hmac.new(master.encode(), tenant_id.encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for `body` sent as `message_id` at `timestamp`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }
