"""`/_sim/*`: the simulator's own control and inspection API (no auth: it listens on loopback).

- `GET /_sim/config`, `PUT /_sim/config` (partial: only the knobs sent change; 400 on unknown/invalid)
- `POST /_sim/reset` (tasks, records, pending callbacks cleared; config back to the start-up config)
- `GET /_sim/requests?provider=`, `GET /_sim/callbacks?task_id=`, `GET /_sim/tasks?provider=`,
  `GET /_sim/stats`, `POST /_sim/stats/reset` (high-water marks restart), `GET /_sim/info` (base URL
  and the accepted credentials)
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kling_local.simulator.context import read_json_object, sim


async def get_config(request: Request) -> Response:
    return JSONResponse(sim(request).engine.config.model_dump(mode="json"))


async def put_config(request: Request) -> Response:
    changes = await read_json_object(request)
    if changes is None:
        return JSONResponse({"error": "body must be a JSON object of knobs"}, status_code=400)
    try:
        config = sim(request).engine.update_config(changes)
    except ValidationError as exc:
        return JSONResponse({"error": "invalid config", "details": exc.errors(include_url=False)}, 400)
    return JSONResponse(config.model_dump(mode="json"))


async def reset(request: Request) -> Response:
    sim(request).engine.reset()
    return JSONResponse({"ok": True})


async def requests(request: Request) -> Response:
    provider = request.query_params.get("provider")
    return JSONResponse(sim(request).engine.recorder.requests(provider))


async def callbacks(request: Request) -> Response:
    task_id = request.query_params.get("task_id")
    return JSONResponse(sim(request).engine.recorder.callbacks(task_id))


async def tasks(request: Request) -> Response:
    return JSONResponse(sim(request).engine.summaries(request.query_params.get("provider")))


async def stats(request: Request) -> Response:
    return JSONResponse(sim(request).engine.recorder.stats())


async def reset_stats(request: Request) -> Response:
    sim(request).engine.recorder.reset_stats()
    return JSONResponse(sim(request).engine.recorder.stats())


async def info(request: Request) -> Response:
    context = sim(request)
    base_url = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "url": base_url,
            "credentials": context.credentials.model_dump(),
            "env": context.credentials.provider_env(base_url),
        }
    )


ROUTES = [
    Route("/_sim/config", get_config, methods=["GET"]),
    Route("/_sim/config", put_config, methods=["PUT"]),
    Route("/_sim/reset", reset, methods=["POST"]),
    Route("/_sim/requests", requests, methods=["GET"]),
    Route("/_sim/callbacks", callbacks, methods=["GET"]),
    Route("/_sim/tasks", tasks, methods=["GET"]),
    Route("/_sim/stats", stats, methods=["GET"]),
    Route("/_sim/stats/reset", reset_stats, methods=["POST"]),
    Route("/_sim/info", info, methods=["GET"]),
]
