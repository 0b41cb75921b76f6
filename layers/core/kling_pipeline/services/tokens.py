"""Callback tokens: HMAC-SHA256 of the generation id under the stack's signing secret.

The token proves a callback URL was minted by us for that generation; it says nothing about the body,
which is never trusted (ingest re-queries the provider).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from kling_pipeline.config import get_settings


def _secret() -> bytes:
    secret = get_settings().callback_signing_secret
    if secret is None or not secret.get_secret_value():
        raise RuntimeError("CALLBACK_SIGNING_SECRET is not configured")
    return secret.get_secret_value().encode()


def callback_token(generation_id: str) -> str:
    mac = hmac.new(_secret(), generation_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def verify_callback_token(generation_id: str, token: str | None) -> bool:
    if not token:
        return False
    return hmac.compare_digest(callback_token(generation_id).encode(), token.encode())
