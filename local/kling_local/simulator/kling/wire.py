"""The official Kling API's JSON: envelope, errors and task objects (docs/providers.md, `kling`).

Success: `{"code": 0, "message": "SUCCEED", "request_id", "data"}`; errors carry Kling's numeric code
with the HTTP status from the table in docs/providers.md. Callbacks post the bare task object.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from starlette.responses import JSONResponse

from kling_local.simulator.pricing import format_units
from kling_local.simulator.tasks import SimTask, TaskState

STATUS = {
    TaskState.SUBMITTED: "submitted",
    TaskState.PROCESSING: "processing",
    TaskState.SUCCEEDED: "succeed",
    TaskState.FAILED: "failed",
}


def ok(data: Any) -> JSONResponse:
    return JSONResponse({"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data})


def error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "request_id": str(uuid.uuid4())}, status_code=status
    )


def _ms(epoch_s: float) -> int:
    return int(epoch_s * 1000)


def create_data(task: SimTask) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "task_status": STATUS[task.state],
        "task_info": {"external_task_id": task.external_task_id},
        "created_at": _ms(task.created_at),
        "updated_at": _ms(task.updated_at),
    }


def video_task(task: SimTask) -> dict[str, Any]:
    """The task object of query, list and callbacks."""
    videos: list[dict[str, Any]] = []
    if task.state is TaskState.SUCCEEDED and task.spec is not None:
        videos = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task.task_id}/{index}")),
                "url": url,
                "duration": f"{task.spec.duration_s:.1f}",
            }
            for index, url in enumerate(task.outputs)
        ]
    charged = task.credits if task.state is TaskState.SUCCEEDED else Decimal(0)
    return {
        "task_id": task.task_id,
        "task_status": STATUS[task.state],
        "task_status_msg": task.error_message or "",
        "task_info": {"external_task_id": task.external_task_id},
        "final_unit_deduction": format_units(charged) if charged else "0",
        "task_result": {"videos": videos},
        "created_at": _ms(task.created_at),
        "updated_at": _ms(task.updated_at),
    }


def element_task(task: SimTask) -> dict[str, Any]:
    """An element creation task; `task_result.elements` holds the element once it is ready."""
    elements: list[dict[str, Any]] = []
    if task.state is TaskState.SUCCEEDED and task.element_id is not None:
        request = task.request
        elements = [
            {
                "element_id": int(task.element_id),
                "element_name": request.get("element_name"),
                "element_description": request.get("element_description"),
                "reference_type": request.get("reference_type", "image_refer"),
                "element_image_list": request.get("element_image_list"),
                "status": "deleted" if task.deleted else "succeed",
            }
        ]
    return {
        "task_id": task.task_id,
        "task_status": STATUS[task.state],
        "task_status_msg": task.error_message or "",
        "task_info": {"external_task_id": task.external_task_id},
        "task_result": {"elements": elements},
        "created_at": _ms(task.created_at),
        "updated_at": _ms(task.updated_at),
    }


def render(task: SimTask) -> dict[str, Any]:
    return element_task(task) if task.kind == "element" else video_task(task)
