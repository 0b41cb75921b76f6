"""What runs before every Kling route: JWT check, then the random 5xx / 429 fault knobs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from kling_local.simulator.auth import check_kling_jwt
from kling_local.simulator.context import SimContext
from kling_local.simulator.kling.wire import error


def server_error() -> JSONResponse:
    return error(500, 5000, "Server internal error")


def guard(request: Request, sim: SimContext) -> JSONResponse | None:
    """A refusal (401 1000-1004, 500 5000, 429 1302) or None to go on."""
    credentials = sim.credentials
    failure = check_kling_jwt(
        request.headers.get("authorization"), credentials.kling_access_key, credentials.kling_secret_key
    )
    if failure is not None:
        return error(401, failure.code, failure.message)
    fault = sim.engine.http_fault("kling")
    if fault == "5xx":
        return server_error()
    if fault == "429":
        return error(429, 1302, "Request rate limit exceeded, please retry later")
    return None
