"""What runs before every Kling route: JWT check, then the random 5xx / 429 fault knobs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from kling_local.simulator.auth import AuthFailure, kling_account
from kling_local.simulator.config import SimAccount
from kling_local.simulator.context import SimContext
from kling_local.simulator.kling.wire import error


def server_error() -> JSONResponse:
    return error(500, 5000, "Server internal error")


def guard(request: Request, sim: SimContext) -> JSONResponse | SimAccount:
    """A refusal (401 1000-1004, 500 5000, 429 1302), or the account whose key pair signed the JWT."""
    account = kling_account(request.headers.get("authorization"), sim.credentials.accounts_for("kling"))
    if isinstance(account, AuthFailure):
        return error(401, account.code, account.message)
    fault = sim.engine.http_fault("kling")
    if fault == "5xx":
        return server_error()
    if fault == "429":
        return error(429, 1302, "Request rate limit exceeded, please retry later")
    return account
