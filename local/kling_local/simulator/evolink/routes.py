"""EvoLink routes: create (`POST /v1/videos/generations`), query (`GET /v1/tasks/{id}`), cancel.

EvoLink takes no external id, so a create whose answer was lost cannot be looked up: the simulator still
performs it (the `create_lost_response_count` knob), which is how tests prove the pipeline does not blindly
resubmit to this provider.
"""

from __future__ import annotations

import secrets
import string
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kling_local.simulator.auth import bearer_account
from kling_local.simulator.config import SimAccount
from kling_local.simulator.context import SimContext, read_json_object, sim
from kling_local.simulator.engine import ConcurrencyLimitError, NewTask
from kling_local.simulator.evolink.validation import ELEMENT_MODEL, validate_generation
from kling_local.simulator.evolink.wire import error, task_object
from kling_local.simulator.tags import Tag
from kling_local.simulator.tasks import SimTask
from kling_local.simulator.validation import Invalid

_ALPHABET = string.ascii_lowercase + string.digits


def new_task_id() -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"task-unified-{int(time.time())}-{suffix}"


def guard(request: Request, context: SimContext) -> JSONResponse | SimAccount:
    """Bearer key (which names the account), then the random 5xx / 429 knobs."""
    account = bearer_account(
        request.headers.get("authorization"), context.credentials.accounts_for("evolink")
    )
    if account is None:
        return error(401, "unauthorized", "Invalid or missing API key")
    fault = context.engine.http_fault("evolink")
    if fault == "5xx":
        return error(500, "internal_error", "Internal server error, please retry")
    if fault == "429":
        return error(429, "rate_limit_exceeded", "Too many requests, please slow down")
    return account


async def create(request: Request) -> Response:
    context = sim(request)
    account = guard(request, context)
    if isinstance(account, JSONResponse):
        return account
    body = await read_json_object(request)
    if body is None:
        return error(400, "invalid_request", "The request body must be a JSON object")
    try:
        parsed = validate_generation(body)
    except Invalid as exc:
        return error(400, "invalid_parameter", exc.message)
    if Tag.CONTENT_POLICY in parsed.tags:
        return error(400, "content_policy_violation", "The prompt was rejected by the content safety policy")
    new = NewTask(
        provider="evolink",
        kind="element" if parsed.model == ELEMENT_MODEL else "video",
        route=parsed.model,
        request=body,
        spec=parsed.spec,
        tags=parsed.tags,
        task_id=new_task_id(),
        account=account.name,
        account_limit=account.concurrency,
        callback_url=parsed.callback_url,
        credits=parsed.credits,
        cost_usd=parsed.cost_usd,
    )
    try:
        task = context.engine.create(new)
    except ConcurrencyLimitError:
        return error(429, "concurrency_limit_exceeded", "Too many tasks in progress for this account")
    if context.engine.take_lost_response():
        return error(500, "internal_error", "Internal server error, please retry")
    return JSONResponse(task_object(task))


def _task(request: Request) -> SimTask | Response:
    """The task named in the path (videos and elements share EvoLink's namespace), or a refusal."""
    context = sim(request)
    account = guard(request, context)
    if isinstance(account, JSONResponse):
        return account
    engine, task_id, name = context.engine, str(request.path_params["task_id"]), account.name
    task = engine.find("evolink", name, "video", task_id) or engine.find("evolink", name, "element", task_id)
    return error(404, "task_not_found", "Task not found") if task is None else task


async def query(request: Request) -> Response:
    task = _task(request)
    return task if isinstance(task, Response) else JSONResponse(task_object(task))


async def cancel(request: Request) -> Response:
    """Ends a running task `failed` with error code `cancelled` (and calls back).

    Cancelling a finished task changes nothing and answers its current object (idempotent, assumed).
    """
    task = _task(request)
    if isinstance(task, Response):
        return task
    sim(request).engine.cancel(task, "cancelled", "Task cancelled by user")
    return JSONResponse(task_object(task))


ROUTES = [
    Route("/v1/videos/generations", create, methods=["POST"]),
    Route("/v1/tasks/{task_id}", query, methods=["GET"]),
    Route("/v1/tasks/{task_id}/cancel", cancel, methods=["POST"]),
]
