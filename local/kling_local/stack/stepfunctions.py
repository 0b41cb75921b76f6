"""Step Functions locally: moto executes the template's state machine; its Lambda tasks run in-process.

moto 5 can interpret ASL (`{"stepfunctions": {"execute_state_machine": True}}`). Its interpreter calls
Lambda through a boto3 client against the moto server (`http://localhost:$MOTO_PORT`), and moto's Lambda
backend would then need Docker to run the function. The shim below is the one place where the local
stack patches moto: `LambdaSimpleBackend.invoke` (the Docker-free backend, selected with
`{"lambda": {"use_docker": False}}`) runs *our* handler for functions in the active registry and answers
with its JSON result, exactly what the interpreter turns into the task's `Payload`. A handler exception
becomes `x-amz-function-error: Unhandled` with Lambda's `{"errorType", "errorMessage", "stackTrace"}` body,
so `Retry`/`Catch` on the error name behave as in AWS. Any other function falls through to moto. The same
path serves `lambda:Invoke` calls from our own code (`InvocationType=Event` runs in a background thread).
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from moto.core.config import default_user_config

from kling_local.stack.intrinsics import Resolver, to_text
from kling_local.stack.lambdas import FunctionRegistry
from kling_local.stack.template import Resource, load_yaml

logger = logging.getLogger(__name__)


class _ShimState:
    """What `install` changed, so `uninstall` can put it back."""

    registry: FunctionRegistry | None = None
    original_invoke: Any = None
    saved_config: ClassVar[dict[str, Any]] = {}


def _dispatching_invoke(  # noqa: PLR0917 - moto's LambdaBackend.invoke signature
    backend: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> bytes | str | None:
    registry = _ShimState.registry
    spec = registry.find(function_name) if registry is not None else None
    if registry is None or spec is None:
        original = _ShimState.original_invoke
        return original(backend, function_name, qualifier, body, headers, response_headers)  # type: ignore[no-any-return]
    invocation_type = str(headers.get("X-Amz-Invocation-Type", "RequestResponse"))
    payload, function_error = invoke_as_lambda(registry, spec.logical_id, body, invocation_type)
    if function_error:
        response_headers["x-amz-function-error"] = function_error
    response_headers["Content-Length"] = str(len(payload))
    return payload


def invoke_as_lambda(
    registry: FunctionRegistry, function: str, body: bytes | str | None, invocation_type: str
) -> tuple[bytes, str | None]:
    """Lambda's Invoke: (response payload, `X-Amz-Function-Error` or None); `Event` runs in the background.

    Shared by the in-process moto shim and the stack's Lambda endpoint (`lambda_api`), which the
    `kling-pipeline aws` endpoint relays Step Functions tasks to.
    """
    event = json.loads(body) if body else {}
    if invocation_type == "Event":
        threading.Thread(target=_invoke_logged, args=(registry, function, event), daemon=True).start()
        return b"", None
    try:
        return json.dumps(registry.invoke(function, event)).encode(), None
    except Exception as exc:
        logger.exception("%s failed (invoked through Lambda Invoke)", function)
        error = {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
        return json.dumps(error).encode(), "Unhandled"


def _invoke_logged(registry: FunctionRegistry, logical_id: str, event: Any) -> None:
    try:
        registry.invoke(logical_id, event)
    except Exception:
        logger.exception("%s failed (asynchronous Lambda Invoke)", logical_id)


def install(registry: FunctionRegistry) -> None:
    """Make moto execute state machines and dispatch Lambda invocations of `registry`'s functions."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    # `/moto-api/config` writes the same dict; we share the process, so set it directly.
    _ShimState.saved_config.update({key: default_user_config.get(key) for key in ("stepfunctions", "lambda")})
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["lambda"] = {"use_docker": False}
    if _ShimState.original_invoke is None:
        _ShimState.original_invoke = LambdaSimpleBackend.invoke
        setattr(LambdaSimpleBackend, "invoke", _dispatching_invoke)  # noqa: B010 - the patch itself
    _ShimState.registry = registry


def uninstall() -> None:
    """Undo `install` (tests run other moto-based suites in the same process)."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    _ShimState.registry = None
    if _ShimState.original_invoke is not None:
        setattr(LambdaSimpleBackend, "invoke", _ShimState.original_invoke)  # noqa: B010
        _ShimState.original_invoke = None
    for key, value in _ShimState.saved_config.items():
        if value is not None:
            default_user_config[key] = value  # type: ignore[literal-required]
    _ShimState.saved_config.clear()


def definition(resource: Resource, resolver: Resolver, template_dir: Path) -> str:
    """The state machine's ASL with `DefinitionSubstitutions` applied, as SAM would deploy it."""
    props = resource.properties
    body: Any
    if "DefinitionUri" in props:
        uri = to_text(resolver.resolve(props["DefinitionUri"]))
        body = (template_dir / uri).read_text(encoding="utf-8")
        if uri.endswith((".yaml", ".yml")):
            body = json.dumps(load_yaml(body))
    elif "Definition" in props:
        body = json.dumps(resolver.resolve(props["Definition"]))
    elif "DefinitionString" in props:
        body = to_text(resolver.resolve(props["DefinitionString"]))
    else:
        raise ValueError(f"{resource.logical_id} has no Definition, DefinitionUri or DefinitionString")
    substitutions: Mapping[str, Any] = resolver.resolve(props.get("DefinitionSubstitutions") or {})
    for key, value in substitutions.items():
        body = body.replace("${" + key + "}", to_text(value))
    json.loads(body)  # fail at start, not at the first execution
    return str(body)
