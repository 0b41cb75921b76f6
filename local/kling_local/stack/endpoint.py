"""`kling-pipeline aws`: a moto server that outlives local stacks, as AWS outlives Lambda containers.

`kling-pipeline local --aws-endpoint-url URL` keeps no AWS state of its own: tables, queues (with their
in-flight and delayed messages), buckets and Step Functions executions live here. Executions are
interpreted by moto in this process; their Lambda tasks are relayed over HTTP to the handlers of whichever
stack last registered its Lambda endpoint in the function's configuration (`KLING_LOCAL_INVOKE_URL`,
see `lambda_api`). While that stack is down, an invocation answers `ServiceException` (HTTP 500): the state
machine's Retry/Catch treat it exactly like a Lambda service error in AWS, so a poll is retried later
instead of being lost.

A plain `moto_server` works as an endpoint too, except that its state machines cannot reach our handlers
(moto would answer every Lambda task itself).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any, Final

from moto.core.config import default_user_config
from moto.core.exceptions import JsonRESTError
from moto.server import ThreadedMotoServer

from kling_local import moto_dynamodb
from kling_local.stack.lambda_api import INVOKE_URL_VARIABLE

logger = logging.getLogger(__name__)

_RELAY_SLACK_S: Final = 5.0


class LambdaUnreachable(JsonRESTError):
    """Lambda's 500 `ServiceException`: the handlers' process is not running right now."""

    code = 500

    def __init__(self, message: str) -> None:
        super().__init__("ServiceException", message)


def _relay(  # noqa: PLR0917 - moto's LambdaBackend.invoke signature
    backend: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> bytes:
    function = backend.get_function(function_name, qualifier)
    target = (function.environment_vars or {}).get(INVOKE_URL_VARIABLE)
    if not target:
        raise LambdaUnreachable(f"{function_name} has no {INVOKE_URL_VARIABLE}: no local stack registered")
    invocation_type = str(headers.get("X-Amz-Invocation-Type", "RequestResponse"))
    data = body.encode() if isinstance(body, str) else (body or b"")
    request = urllib.request.Request(  # noqa: S310 - a loopback URL the stack registered
        f"{target}/2015-03-31/functions/{function.function_name}/invocations",
        data=data,
        method="POST",
        headers={"X-Amz-Invocation-Type": invocation_type, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=float(function.timeout) + _RELAY_SLACK_S) as response:  # noqa: S310
            payload: bytes = response.read()
            error = response.headers.get("x-amz-function-error")
    except urllib.error.HTTPError as exc:
        raise LambdaUnreachable(f"{function_name}: the local stack answered {exc.code}") from None
    except OSError as exc:
        raise LambdaUnreachable(f"{function_name}: the local stack is not reachable ({exc})") from None
    if error:
        response_headers["x-amz-function-error"] = error
    response_headers["Content-Length"] = str(len(payload))
    return payload


def install_relay() -> None:
    """Execute state machines in this process and relay their Lambda tasks to the registered stack."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["lambda"] = {"use_docker": False}
    setattr(LambdaSimpleBackend, "invoke", _relay)  # noqa: B010 - the relay itself


def serve(host: str, port: int) -> ThreadedMotoServer:
    """Start the endpoint (the caller keeps the process alive); moto calls Lambda at MOTO_PORT."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_dynamodb.install()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_port = server.get_host_and_port()[1]
    os.environ["MOTO_PORT"] = str(bound_port)
    install_relay()
    print(json.dumps({"aws_endpoint_url": f"http://{host}:{bound_port}"}), flush=True)
    return server
