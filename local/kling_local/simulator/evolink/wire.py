"""EvoLink's JSON: the task object (create, query, cancel, callbacks) and `{"error": {…}}` errors."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import JSONResponse

from kling_local.simulator.tasks import SimTask, TaskState

STATUS = {
    TaskState.SUBMITTED: "pending",
    TaskState.PROCESSING: "processing",
    TaskState.SUCCEEDED: "completed",
    TaskState.FAILED: "failed",
}

# HTTP status → (error code, error type) used when a route does not name a more specific code
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
}


def error(status: int, code: str, message: str) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "type": ERROR_TYPES.get(status, "api_error")}}
    return JSONResponse(body, status_code=status)


def _usage(task: SimTask) -> dict[str, float]:
    """What the task is billed: the gateway charges finished tasks only (failed and cancelled: nothing)."""
    if task.state is TaskState.FAILED:
        return {"credits": 0.0, "cost_usd": 0.0}
    return {"credits": float(task.credits), "cost_usd": float(task.cost_usd or 0)}


def task_object(task: SimTask) -> dict[str, Any]:
    finish_in = 0.0 if task.finish_at is None else max(0.0, task.finish_at - time.monotonic())
    body: dict[str, Any] = {
        "id": task.task_id,
        "created": int(task.created_at),
        "model": task.route,
        "object": "video.generation.task" if task.kind == "video" else "element.generation.task",
        "progress": task.progress(),
        "status": STATUS[task.state],
        "task_info": {"can_cancel": not task.state.terminal, "estimated_time": round(finish_in)},
        "type": "video" if task.kind == "video" else "element",
        "results": [],
        "usage": _usage(task),
    }
    if task.state is TaskState.SUCCEEDED:
        body["results"] = [task.element_id] if task.kind == "element" else list(task.outputs)
    if task.state is TaskState.FAILED:
        body["error"] = {"code": task.error_code or "generation_failed", "message": task.error_message or ""}
    return body
