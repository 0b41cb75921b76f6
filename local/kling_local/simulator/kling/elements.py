"""Kling custom elements (docs/providers.md, assumed paths): create task, query, list, delete.

An element is created asynchronously like a video: the task goes submitted → processing → succeed and
then carries the element id in `task_result.elements`. Deleted elements stay queryable (status
"deleted") but leave the list.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kling_local.simulator.context import read_json_object, sim
from kling_local.simulator.engine import NewTask
from kling_local.simulator.kling.guard import guard
from kling_local.simulator.kling.videos import new_task_id, page, submit
from kling_local.simulator.kling.wire import element_task, error, ok
from kling_local.simulator.tags import tags_in
from kling_local.simulator.tasks import TaskState
from kling_local.simulator.validation import Invalid, enum_str, optional_str, require, url_list

MAX_REFER_IMAGES = 3


def validate_element(body: dict[str, Any]) -> None:
    """element_name, reference_type image_refer|video_refer, a frontal image and ≤ 3 reference images."""
    name = optional_str(body, "element_name", max_len=100)
    require(bool(name and name.strip()), "element_name is required")
    optional_str(body, "element_description", max_len=500)
    reference_type = enum_str(body, "reference_type", ("image_refer", "video_refer"), "image_refer")
    if reference_type == "image_refer":
        images = body.get("element_image_list")
        require(isinstance(images, dict), "element_image_list is required for reference_type image_refer")
        assert isinstance(images, dict)
        frontal = images.get("frontal_image")
        require(
            isinstance(frontal, str) and frontal.strip() != "", "element_image_list.frontal_image is required"
        )
        refers = images.get("refer_images") or []
        require(isinstance(refers, list), "element_image_list.refer_images must be an array")
        url_list([r.get("image_url") if isinstance(r, dict) else None for r in refers], "refer_images")
        require(len(refers) <= MAX_REFER_IMAGES, f"at most {MAX_REFER_IMAGES} refer_images")
    optional_str(body, "callback_url", max_len=2048)
    external_task_id = optional_str(body, "external_task_id", max_len=128)
    require(external_task_id != "", "external_task_id must not be empty")


async def create(request: Request) -> Response:
    context = sim(request)
    account = guard(request, context)
    if isinstance(account, JSONResponse):
        return account
    body = await read_json_object(request)
    if body is None:
        return error(400, 1200, "Invalid request: the body must be a JSON object")
    try:
        validate_element(body)
    except Invalid as exc:
        return error(400, 1201, exc.message)
    new = NewTask(
        provider="kling",
        kind="element",
        route="element",
        request=body,
        spec=None,
        tags=tags_in([body.get("element_name"), body.get("element_description")]),
        task_id=new_task_id(),
        account=account.name,
        account_limit=account.concurrency,
        external_task_id=body.get("external_task_id"),
        callback_url=body.get("callback_url"),
    )
    return submit(context, new)


async def query(request: Request) -> Response:
    context = sim(request)
    account = guard(request, context)
    if isinstance(account, JSONResponse):
        return account
    task = context.engine.find("kling", account.name, "element", str(request.path_params["task_id"]))
    if task is None:
        return error(404, 1203, "Task not found")
    return ok(element_task(task))


async def list_elements(request: Request) -> Response:
    context = sim(request)
    account = guard(request, context)
    if isinstance(account, JSONResponse):
        return account
    paging = page(request)
    if isinstance(paging, JSONResponse):
        return paging
    tasks = [t for t in context.engine.list_tasks("kling", account.name, "element") if not t.deleted]
    return ok([element_task(task) for task in tasks[paging]])


async def delete(request: Request) -> Response:
    context = sim(request)
    account = guard(request, context)
    if isinstance(account, JSONResponse):
        return account
    body = await read_json_object(request)
    element_id = body.get("element_id") if body else None
    if not isinstance(element_id, (str, int)) or isinstance(element_id, bool) or str(element_id) == "":
        return error(400, 1201, "element_id is required")
    for task in context.engine.list_tasks("kling", account.name, "element"):
        if task.state is TaskState.SUCCEEDED and task.element_id == str(element_id) and not task.deleted:
            context.engine.delete_element(task)
            return ok({})
    return error(404, 1203, "Element not found")


ROUTES = [
    Route("/v1/general/advanced-custom-elements", create, methods=["POST"]),
    Route("/v1/general/advanced-custom-elements", list_elements, methods=["GET"]),
    Route("/v1/general/advanced-custom-elements/{task_id}", query, methods=["GET"]),
    Route("/v1/general/delete-elements", delete, methods=["POST"]),
]
