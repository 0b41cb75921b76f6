"""Credential checks as the providers make them: Kling's HS256 JWT, the gateways' static Bearer keys.

The JWT is verified for real (signature, `iss` = access key, `exp`, `nbf`) because a token-signing bug in
our adapter is exactly what the simulator must catch before a real account does.
"""

from __future__ import annotations

import hmac
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import jwt

from kling_local.simulator.config import SimAccount

KLING_JWT_LIFETIME_S = 1800


@dataclass(frozen=True)
class AuthFailure:
    """Why a request was refused; `code` is Kling's 1000-1004 (the gateways only use the message)."""

    code: int
    message: str


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_kling_jwt(authorization: str | None, access_key: str, secret_key: str) -> AuthFailure | None:
    """None when the header carries a valid JWT for this account; otherwise Kling's auth error.

    1001 no Authorization, 1002 not a (well-signed) JWT, 1000 issued for another access key,
    1003 not yet valid (nbf), 1004 expired (exp).
    """
    if not authorization:
        return AuthFailure(1001, "Authorization is empty")
    token = bearer_token(authorization)
    if token is None:
        return AuthFailure(1002, "Authorization is invalid: expected 'Bearer <jwt>'")
    try:
        with _short_keys_allowed():
            claims = jwt.decode(
                token,
                secret_key,
                algorithms=["HS256"],
                options={"require": ["iss", "exp"], "verify_iss": False},
            )
    except jwt.ExpiredSignatureError:
        return AuthFailure(1004, "Authorization has expired")
    except jwt.ImmatureSignatureError:
        return AuthFailure(1003, "Authorization is not yet valid")
    except jwt.InvalidTokenError as exc:
        return AuthFailure(1002, f"Authorization is invalid: {exc}")
    if not hmac.compare_digest(str(claims.get("iss", "")), access_key):
        return AuthFailure(1000, "Authentication failed: unknown access key")
    return None


def kling_account(authorization: str | None, accounts: Sequence[SimAccount]) -> SimAccount | AuthFailure:
    """The account whose key pair signed the JWT (found by its `iss`), or Kling's auth error."""
    token = bearer_token(authorization)
    issuer = ""
    if token is not None:
        try:
            issuer = str(jwt.decode(token, options={"verify_signature": False}).get("iss", ""))
        except jwt.InvalidTokenError:
            issuer = ""
    account = next((a for a in accounts if hmac.compare_digest(a.key, issuer)), accounts[0])
    failure = check_kling_jwt(authorization, account.key, account.secret or "")
    return account if failure is None else failure


def bearer_account(authorization: str | None, accounts: Sequence[SimAccount]) -> SimAccount | None:
    """The gateway account whose API key the request carries, or None."""
    return next((a for a in accounts if check_bearer(authorization, a.key)), None)


def check_bearer(authorization: str | None, api_key: str) -> bool:
    """A gateway's static key check, in constant time."""
    token = bearer_token(authorization)
    return token is not None and hmac.compare_digest(token, api_key)


def make_kling_jwt(access_key: str, secret_key: str) -> str:
    """A token as Kling's docs build it (iss = AK, exp = now + 30 min, nbf = now - 5): for tests and demos."""
    now = int(time.time())
    with _short_keys_allowed():
        return jwt.encode(
            {"iss": access_key, "exp": now + KLING_JWT_LIFETIME_S, "nbf": now - 5},
            secret_key,
            algorithm="HS256",
            headers={"alg": "HS256", "typ": "JWT"},
        )


@contextmanager
def _short_keys_allowed() -> Iterator[None]:
    """PyJWT warns on HMAC keys under 32 bytes; the simulator's default secret is short on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        yield
