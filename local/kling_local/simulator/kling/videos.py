"""Kling video routes: create, query (task id or external_task_id), list — for the three endpoints.

Each endpoint keeps its own task namespace, like Kling: a task created on omni-video is not found on
text2video. A create answered with an injected "lost response" (HTTP 500) has still created the task, so
a client that looks it up by external_task_id finds it — the behaviour the pipeline must rely on.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kling_local.simulator.config import SimAccount
from kling_local.simulator.context import SimContext, read_json_object, sim
from kling_local.simulator.engine import ConcurrencyLimitError, DuplicateExternalIdError, NewTask
from kling_local.simulator.kling.guard import guard, server_error
from kling_local.simulator.kling.validation import VALIDATORS
from kling_local.simulator.kling.wire import create_data, error, ok, video_task
from kling_local.simulator.pricing import kling_units
from kling_local.simulator.tags import Tag
from kling_local.simulator.validation import Invalid

MAX_PAGE_SIZE = 500


def new_task_id() -> str:
    """Kling task ids are long digit strings."""
    return str(secrets.randbelow(9 * 10**17) + 10**17)


def _checked(request: Request, context: SimContext) -> JSONResponse | SimAccount:
    """404 for an endpoint Kling does not have, else the guard's refusal or the caller's account."""
    if request.path_params["endpoint"] not in VALIDATORS:
        return error(404, 1203, "Resource not found")
    return guard(request, context)


def submit(context: SimContext, new: NewTask) -> Response:
    """Create the task and answer like Kling (429 1303 at the concurrency limit, 400 for a reused id)."""
    try:
        task = context.engine.create(new)
    except ConcurrencyLimitError:
        return error(429, 1303, "Parallel task limit reached for this account, please retry later")
    except DuplicateExternalIdError:
        return error(400, 1201, "external_task_id already exists")
    if context.engine.take_lost_response():
        return server_error()
    return ok(create_data(task))


async def create(request: Request) -> Response:
    context = sim(request)
    account = _checked(request, context)
    if isinstance(account, JSONResponse):
        return account
    endpoint = str(request.path_params["endpoint"])
    body = await read_json_object(request)
    if body is None:
        return error(400, 1200, "Invalid request: the body must be a JSON object")
    try:
        parsed = VALIDATORS[endpoint](body)
    except Invalid as exc:
        return error(400, 1201, exc.message)
    if Tag.CONTENT_POLICY in parsed.tags:
        return error(400, 1301, "The content you submitted violates the content security policy")
    new = NewTask(
        provider="kling",
        kind="video",
        route=endpoint,
        request=body,
        spec=parsed.spec,
        tags=parsed.tags,
        task_id=new_task_id(),
        account=account.name,
        account_limit=account.concurrency,
        external_task_id=parsed.external_task_id,
        callback_url=parsed.callback_url,
        credits=kling_units(parsed.mode, parsed.spec.sound, parsed.spec.duration_s),
    )
    return submit(context, new)


async def query(request: Request) -> Response:
    context = sim(request)
    account = _checked(request, context)
    if isinstance(account, JSONResponse):
        return account
    task = context.engine.find("kling", account.name, "video", str(request.path_params["task_id"]))
    if task is None or task.route != request.path_params["endpoint"]:
        return error(404, 1203, "Task not found")
    return ok(video_task(task))


def page(request: Request) -> slice | JSONResponse:
    """The slice asked for: pageNum ≥ 1 (default 1), pageSize 1-500 (default 30); else Kling's 400."""
    try:
        page_num = int(request.query_params.get("pageNum", "1"))
        page_size = int(request.query_params.get("pageSize", "30"))
    except ValueError:
        return error(400, 1201, "pageNum and pageSize must be integers")
    if page_num < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        return error(400, 1201, f"pageNum must be >= 1 and pageSize between 1 and {MAX_PAGE_SIZE}")
    return slice((page_num - 1) * page_size, page_num * page_size)


async def list_tasks(request: Request) -> Response:
    context = sim(request)
    account = _checked(request, context)
    if isinstance(account, JSONResponse):
        return account
    paging = page(request)
    if isinstance(paging, JSONResponse):
        return paging
    tasks = context.engine.list_tasks("kling", account.name, "video", str(request.path_params["endpoint"]))
    return ok([video_task(task) for task in tasks[paging]])


ROUTES = [
    Route("/v1/videos/{endpoint}", create, methods=["POST"]),
    Route("/v1/videos/{endpoint}", list_tasks, methods=["GET"]),
    Route("/v1/videos/{endpoint}/{task_id}", query, methods=["GET"]),
]
