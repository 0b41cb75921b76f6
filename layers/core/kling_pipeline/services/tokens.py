"""Callback tokens: HMAC-SHA256 of the provider and the generation id under the stack's signing secret.

The token proves a callback URL was minted by us for that generation at that provider: a token leaked by
one provider cannot be replayed at another provider's route. It says nothing about the body, which is
never trusted (ingest re-queries the provider).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from kling_pipeline.config import get_settings


def signing_secret() -> bytes:
    """The stack's signing secret (CALLBACK_SIGNING_SECRET); other keys are derived from it by purpose."""
    secret = get_settings().callback_signing_secret
    if secret is None or not secret.get_secret_value():
        raise RuntimeError("CALLBACK_SIGNING_SECRET is not configured")
    return secret.get_secret_value().encode()


def callback_token(generation_id: str, provider: str) -> str:
    message = f"{provider}\n{generation_id}".encode()
    mac = hmac.new(signing_secret(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def verify_callback_token(generation_id: str, provider: str, token: str | None) -> bool:
    """Constant-time check; anything that is not ASCII cannot be one of our tokens (and would not encode)."""
    if not token or not token.isascii():
        return False
    return hmac.compare_digest(callback_token(generation_id, provider).encode(), token.encode())
