"""In-process Lambda: the template's functions, their environment, and invoking their handlers.

A function's handler is `CodeUri` (relative to the template) turned into a dotted package path plus
`Handler`, so `functions/api/` + `app.lambda_handler` is `functions.api.app.lambda_handler`. Handlers are
imported on first invocation, never at start: the stack comes up even while a handler does not import,
and each handler pays its own import cost like a cold start.

All handlers share one process and therefore one `os.environ`. `union_environment` merges the functions'
environments (Globals + each function's own); when two functions give a variable different values the
first function (template order) keeps it and the conflict is logged — per-invocation environments would
race between the threads that invoke handlers concurrently.
"""

from __future__ import annotations

import copy
import importlib
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kling_local.stack import per_thread
from kling_local.stack.intrinsics import Resolver, to_text
from kling_local.stack.template import SERVERLESS_FUNCTION, Template

logger = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class EventSource:
    """One entry of a function's `Events`, with properties resolved and the raw ones kept for logical ids."""

    name: str
    type: str
    properties: dict[str, Any]
    raw_properties: dict[str, Any]


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]
    events: tuple[EventSource, ...] = field(default_factory=tuple)
    # EventInvokeConfig: retries of an asynchronous invocation and where its failure record goes.
    async_retries: int = 2
    on_failure_arn: str | None = None


class LambdaContext:
    """The context attributes Powertools and our handlers read (inject_lambda_context, idempotency)."""

    def __init__(self, spec: FunctionSpec) -> None:
        now = datetime.now(UTC)
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = f"{now:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline = time.monotonic() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def handler_path(template: Template, code_uri: str, handler: str) -> str:
    """`functions/api/` + `app.lambda_handler` → `functions.api.app.lambda_handler`."""
    code_dir = (template.directory / code_uri).resolve()
    try:
        parts = code_dir.relative_to(template.directory).parts
    except ValueError:
        raise ValueError(f"CodeUri {code_uri!r} lies outside the template's directory") from None
    return ".".join([*parts, handler])


def function_specs(template: Template, resolver: Resolver) -> list[FunctionSpec]:
    """Every active `AWS::Serverless::Function`, resolved against the local stack's names."""
    specs = []
    for resource in template.of_type(SERVERLESS_FUNCTION):
        if not resolver.is_active(resource):
            continue
        props = resource.properties
        variables = resolver.resolve((props.get("Environment") or {}).get("Variables") or {})
        events = tuple(
            EventSource(
                name=name,
                type=str(event.get("Type", "")),
                properties=resolver.resolve(event.get("Properties") or {}),
                raw_properties=dict(event.get("Properties") or {}),
            )
            for name, event in (props.get("Events") or {}).items()
        )
        invoke_config = resolver.resolve(props.get("EventInvokeConfig") or {})
        on_failure = ((invoke_config.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        code_uri = to_text(resolver.resolve(props.get("CodeUri", ".")))
        handler = to_text(resolver.resolve(props.get("Handler", "app.lambda_handler")))
        specs.append(
            FunctionSpec(
                logical_id=resource.logical_id,
                name=resolver.physical_name(resource.logical_id),
                arn=resolver.arn(resource.logical_id),
                handler=handler_path(template, code_uri, handler),
                runtime=to_text(resolver.resolve(props.get("Runtime", "python3.12"))),
                timeout_s=int(resolver.resolve(props.get("Timeout", 3))),
                memory_mb=int(resolver.resolve(props.get("MemorySize", 128))),
                environment={key: to_text(value) for key, value in variables.items()},
                events=events,
                async_retries=int(invoke_config.get("MaximumRetryAttempts", 2)),
                on_failure_arn=to_text(on_failure) if on_failure else None,
            )
        )
    return specs


def union_environment(specs: Iterable[FunctionSpec]) -> dict[str, str]:
    """All functions' variables in one map; the first function wins a conflict (logged)."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for spec in specs:
        for key, value in spec.environment.items():
            if key not in merged:
                merged[key], owner[key] = value, spec.logical_id
            elif merged[key] != value:
                logger.info(
                    "env %s differs between %s and %s: keeping %s's value (one process, one environment)",
                    key,
                    owner[key],
                    spec.logical_id,
                    owner[key],
                )
    return merged


class FunctionRegistry:
    """Logical id / function name / ARN → handler, imported lazily and invoked like Lambda would."""

    def __init__(self, specs: Iterable[FunctionSpec]) -> None:
        self.specs = {spec.logical_id: spec for spec in specs}
        self._by_name = {spec.name: spec for spec in self.specs.values()}
        self._handlers: dict[str, Handler] = {}
        self._import_lock = threading.Lock()
        per_thread.install()  # one invocation's request state per thread, as one Lambda environment has

    def find(self, ref: str) -> FunctionSpec | None:
        """A function by logical id, name, ARN or qualified ARN (`...:function:name:$LATEST`)."""
        if ref in self.specs:
            return self.specs[ref]
        if ref.startswith("arn:"):
            ref = ref.split(":")[6]
        return self._by_name.get(ref.split(":")[0])

    def get(self, ref: str) -> FunctionSpec:
        spec = self.find(ref)
        if spec is None:
            raise KeyError(f"no local function {ref!r}")
        return spec

    def invoke(self, ref: str, event: Any) -> Any:
        """Run the handler with a JSON copy of `event`, as Lambda would; exceptions propagate."""
        spec = self.get(ref)
        handler = self._handler(spec)
        started = time.monotonic()
        try:
            return handler(copy.deepcopy(event), LambdaContext(spec))
        finally:
            logger.debug("%s ran in %.0f ms", spec.logical_id, (time.monotonic() - started) * 1000)

    def _handler(self, spec: FunctionSpec) -> Handler:
        with self._import_lock:
            if spec.logical_id not in self._handlers:
                module_name, _, attribute = spec.handler.rpartition(".")
                module = importlib.import_module(module_name)
                self._handlers[spec.logical_id] = getattr(module, attribute)
            return self._handlers[spec.logical_id]


def ensure_importable(directory: Path) -> bool:
    """Put the template's directory on sys.path (handler packages live there); True when added."""
    entry = str(directory)
    if entry in sys.path:
        return False
    sys.path.insert(0, entry)
    return True
