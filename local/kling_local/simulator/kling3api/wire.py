"""kling3api's JSON (seed 004): `{"code": 200, "message": "success", "data": {…}}` and flat errors.

The seed shows `IN_PROGRESS` right from create; the simulator keeps reporting `IN_PROGRESS` until the
task ends (it never reports the assumed `PENDING`), so the status never appears to move backwards.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

from kling_local.simulator.tasks import SimTask, TaskState

STATUS = {
    TaskState.SUBMITTED: "IN_PROGRESS",
    TaskState.PROCESSING: "IN_PROGRESS",
    TaskState.SUCCEEDED: "SUCCESS",
    TaskState.FAILED: "FAILED",
}


def ok(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"code": 200, "message": "success", "data": data})


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def create_data(task: SimTask) -> dict[str, Any]:
    return {"task_id": task.task_id, "status": "IN_PROGRESS", "consumed_credits": int(task.credits)}


def status_data(task: SimTask) -> dict[str, Any]:
    request = task.request
    return {
        "task_id": task.task_id,
        "status": STATUS[task.state],
        "consumed_credits": int(task.credits),
        "created_at": datetime.fromtimestamp(task.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "request": {
            key: request[key] for key in ("type", "prompt", "duration", "aspect_ratio") if key in request
        },
        "response": list(task.outputs) if task.state is TaskState.SUCCEEDED else [],
        "error_message": task.error_message if task.state is TaskState.FAILED else None,
        "type": task.route,
    }
