"""kling3api routes: `POST /api/generate`, `GET /api/status?task_id=`. No callbacks: poll only.

Task ids carry the seed's prefixes, n71 for Kling O3 and n75 for Kling 3.0.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kling_local.simulator.auth import bearer_account
from kling_local.simulator.config import SimAccount
from kling_local.simulator.context import SimContext, read_json_object, sim
from kling_local.simulator.engine import ConcurrencyLimitError, NewTask
from kling_local.simulator.kling3api.validation import validate_generate
from kling_local.simulator.kling3api.wire import create_data, error, ok, status_data
from kling_local.simulator.tags import Tag
from kling_local.simulator.validation import Invalid


def guard(request: Request, context: SimContext) -> JSONResponse | SimAccount:
    """Bearer key (which names the account), then the random 5xx / 429 knobs."""
    account = bearer_account(
        request.headers.get("authorization"), context.credentials.accounts_for("kling3api")
    )
    if account is None:
        return error(401, "INVALID_API_KEY", "API key is missing or invalid")
    fault = context.engine.http_fault("kling3api")
    if fault == "5xx":
        return error(500, "INTERNAL_ERROR", "Server error, please try again later")
    if fault == "429":
        return error(429, "RATE_LIMITED", "Too many requests, please slow down")
    return account


async def generate(request: Request) -> Response:
    context = sim(request)
    account = guard(request, context)
    if isinstance(account, JSONResponse):
        return account
    body = await read_json_object(request)
    if body is None:
        return error(400, "INVALID_PARAMETER", "The request body must be a JSON object")
    try:
        parsed = validate_generate(body)
    except Invalid as exc:
        return error(400, exc.code or "INVALID_PARAMETER", exc.message)
    if Tag.CONTENT_POLICY in parsed.tags:
        return error(400, "INVALID_PROMPT", "The prompt violates the content policy")
    new = NewTask(
        provider="kling3api",
        kind="video",
        route=parsed.task_type,
        request=body,
        spec=parsed.spec,
        tags=parsed.tags,
        task_id=("n71" if parsed.is_o3 else "n75") + secrets.token_hex(8),
        account=account.name,
        account_limit=account.concurrency,
        credits=Decimal(parsed.credits),
    )
    try:
        task = context.engine.create(new)
    except ConcurrencyLimitError:
        return error(429, "RATE_LIMITED", "Too many tasks in progress, please slow down")
    if context.engine.take_lost_response():
        return error(500, "INTERNAL_ERROR", "Server error, please try again later")
    return ok(create_data(task))


async def status(request: Request) -> Response:
    context = sim(request)
    account = guard(request, context)
    if isinstance(account, JSONResponse):
        return account
    task_id = request.query_params.get("task_id")
    if not task_id:
        return error(400, "INVALID_PARAMETER", "task_id is required")
    task = context.engine.find("kling3api", account.name, "video", task_id)
    if task is None:
        return error(404, "TASK_NOT_FOUND", "Task not found")
    return ok(status_data(task))


ROUTES = [
    Route("/api/generate", generate, methods=["POST"]),
    Route("/api/status", status, methods=["GET"]),
]
