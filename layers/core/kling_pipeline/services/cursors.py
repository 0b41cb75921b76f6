"""Opaque page cursors for the API: the store's cursor (a DynamoDB key) sealed for one tenant.

A cursor a caller can read tells them the table's key layout and other tenants' partition names; one a
caller can edit is a way to walk the index. So the API hands out the store's cursor encrypted and
authenticated, with the tenant as associated data: another tenant's (or an edited) cursor fails the tag
and is refused as a field error. Keys are derived from the stack's signing secret by purpose.

The layer carries no cryptography package, and this needs no more than the standard library offers:
encrypt-then-MAC with a SHAKE-256 keystream (key ‖ random 16-byte nonce) and a truncated HMAC-SHA256 tag.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from kling_pipeline.errors import InvalidInput
from kling_pipeline.services.tokens import signing_secret

_VERSION = b"\x01"
_NONCE_BYTES = 16
_TAG_BYTES = 16


def seal_cursor(cursor: str | None, tenant_id: str) -> str | None:
    """The store's `cursor` as an opaque token only `tenant_id` can use (None stays None: last page)."""
    if cursor is None:
        return None
    encryption, authentication = _keys()
    nonce = secrets.token_bytes(_NONCE_BYTES)
    body = _xor(cursor.encode(), _keystream(encryption, nonce, len(cursor.encode())))
    tag = _tag(authentication, nonce + body, tenant_id)
    return base64.urlsafe_b64encode(_VERSION + nonce + body + tag).decode().rstrip("=")


def open_cursor(token: str | None, tenant_id: str) -> str | None:
    """The store's cursor inside `token`; InvalidInput (field `cursor`) for anything we did not seal for
    this tenant."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise _not_ours() from None
    if len(raw) <= 1 + _NONCE_BYTES + _TAG_BYTES or raw[:1] != _VERSION:
        raise _not_ours()
    nonce, body, tag = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES : -_TAG_BYTES], raw[-_TAG_BYTES:]
    encryption, authentication = _keys()
    if not hmac.compare_digest(tag, _tag(authentication, nonce + body, tenant_id)):
        raise _not_ours()
    try:
        return _xor(body, _keystream(encryption, nonce, len(body))).decode()
    except UnicodeDecodeError:  # pragma: no cover - authenticated, so never in practice
        raise _not_ours() from None


def _keys() -> tuple[bytes, bytes]:
    secret = signing_secret()
    return (
        hmac.new(secret, b"kling-pipeline cursor encryption v1", hashlib.sha256).digest(),
        hmac.new(secret, b"kling-pipeline cursor authentication v1", hashlib.sha256).digest(),
    )


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    return hashlib.shake_256(key + nonce).digest(length)


def _tag(key: bytes, data: bytes, tenant_id: str) -> bytes:
    message = _VERSION + data + b"\x00" + tenant_id.encode()
    return hmac.new(key, message, hashlib.sha256).digest()[:_TAG_BYTES]


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def _not_ours() -> InvalidInput:
    return InvalidInput.for_field("cursor", "is not a cursor this API returned")
