"""Signed, expiring download links, the way provider CDNs hand out results.

The token carries everything needed to serve the file (resolution, duration, sound, padding, expiry) and
an HMAC under a secret drawn when the server starts, so downloads need no task state: a link keeps working
across `POST /_sim/reset` until it expires, and links from an earlier simulator process are rejected like
forged ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass

from kling_local.simulator.media import OutputSpec


@dataclass(frozen=True)
class LinkClaims:
    """What a download link promises: this MP4, padded to `pad_to` bytes, until `expires_at`."""

    task_id: str
    spec: OutputSpec
    pad_to: int | None
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkExpiredError(Exception):
    """A valid link past its expiry (HTTP 403, like an expired presigned URL)."""


class LinkInvalidError(Exception):
    """A malformed or forged link (HTTP 403)."""


class LinkSigner:
    def __init__(self) -> None:
        self._secret = os.urandom(32)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()[:18])

    def token(self, claims: LinkClaims) -> str:
        spec = claims.spec
        data = {
            "t": claims.task_id,
            "w": spec.width,
            "h": spec.height,
            "d": spec.duration_s,
            "a": spec.sound,
            "p": claims.pad_to,
            "e": round(claims.expires_at, 3),
        }
        payload = _b64(json.dumps(data, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str) -> LinkClaims:
        payload, _, signature = token.partition(".")
        if not signature or not hmac.compare_digest(signature, self._sign(payload)):
            raise LinkInvalidError("signature does not match")
        try:
            data = json.loads(_unb64(payload))
            spec = OutputSpec(int(data["w"]), int(data["h"]), float(data["d"]), bool(data["a"]))
            claims = LinkClaims(str(data["t"]), spec, data["p"], float(data["e"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise LinkInvalidError("malformed token") from exc
        if time.time() >= claims.expires_at:
            raise LinkExpiredError("link expired")
        return claims
