"""The stack's handlers behind Lambda's own Invoke API, for an AWS endpoint in another process.

With `--aws-endpoint-url`, Step Functions executions live in that endpoint (durable, like in AWS) and their
Lambda tasks must reach handlers that live in this process. The stack serves
`POST /2015-03-31/functions/{name}/invocations` here and writes this URL into each function's configuration
(`KLING_LOCAL_INVOKE_URL`); the endpoint started by `kling-pipeline aws` relays invocations to it (see
`endpoint`). While no stack runs, the relay answers `ServiceException`, which the state machine retries
and catches like a Lambda service error in AWS.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kling_local.serving import BackgroundServer
from kling_local.stack.lambdas import FunctionRegistry
from kling_local.stack.stepfunctions import invoke_as_lambda

INVOKE_URL_VARIABLE = "KLING_LOCAL_INVOKE_URL"


class LambdaApi:
    """Lambda Invoke for the registry's functions, on a socket bound at construction."""

    def __init__(self, registry: FunctionRegistry, host: str = "127.0.0.1", port: int = 0) -> None:
        self._registry = registry
        self._http = BackgroundServer(host, port, name="lambda api")
        self.url = f"http://{host}:{self._http.port}"

    def start(self) -> None:
        route = Route("/2015-03-31/functions/{name}/invocations", self._invoke, methods=["POST"])
        self._http.start(Starlette(routes=[route]), ws="none")

    def stop(self) -> None:
        self._http.stop()

    async def _invoke(self, request: Request) -> Response:
        spec = self._registry.find(request.path_params["name"])
        if spec is None:
            body = b'{"Type": "User", "Message": "Function not found"}'
            return Response(body, status_code=404, headers={"x-amzn-errortype": "ResourceNotFoundException"})
        invocation_type = request.headers.get("x-amz-invocation-type", "RequestResponse")
        payload, error = await asyncio.to_thread(
            invoke_as_lambda, self._registry, spec.logical_id, await request.body(), invocation_type
        )
        headers = {"x-amz-function-error": error} if error else {}
        status = 202 if invocation_type == "Event" else 200
        return Response(payload, status_code=status, headers=headers, media_type="application/json")
