"""Per-invocation state of Powertools' event handler, one copy per thread in the local stack.

Powertools' REST resolver keeps the request being handled in class attributes (`BaseRouter.current_event`,
`BaseRouter.lambda_context`) and in the resolver's `context` dict. That is right in Lambda, where one
execution environment runs one invocation at a time, and wrong here, where the local stack runs concurrent
invocations of one handler on threads of one process: found by the chaos run, a create read another
request's body (409) and a request with a valid key read a callback's event (401). Installed by the local
stack only, so each thread is an execution environment of its own; production code never imports this.
"""

from __future__ import annotations

import threading
from abc import ABCMeta
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, BaseRouter

_per_thread = threading.local()


class _ThreadSlot:
    """A data descriptor whose value belongs to the current thread (for the class and every instance)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        try:
            return getattr(_per_thread, self.name)
        except AttributeError:
            raise AttributeError(self.name) from None

    def __set__(self, instance: object, value: Any) -> None:
        setattr(_per_thread, self.name, value)


class _ResolverContext:
    """`resolver.context`, one dict per thread and resolver, empty until the thread first uses it."""

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        contexts: dict[int, dict[str, Any]] = _per_thread.__dict__.setdefault("contexts", {})
        return contexts.setdefault(id(instance), {})

    def __set__(self, instance: object, value: dict[str, Any]) -> None:
        _per_thread.__dict__.setdefault("contexts", {})[id(instance)] = value


class _PerThreadRouterMeta(ABCMeta):
    """`BaseRouter.current_event = …` is an assignment on the class: only its metaclass can intercept it."""

    current_event = _ThreadSlot("current_event")
    lambda_context = _ThreadSlot("lambda_context")


_installed = threading.Lock()


def install() -> None:
    """Idempotent; call before any handler runs."""
    with _installed:
        if type(BaseRouter) is _PerThreadRouterMeta:
            return
        # Instances read through BaseRouter's own dict; class-level reads and writes through the metaclass.
        type.__setattr__(BaseRouter, "current_event", _ThreadSlot("current_event"))
        type.__setattr__(BaseRouter, "lambda_context", _ThreadSlot("lambda_context"))
        BaseRouter.__class__ = _PerThreadRouterMeta  # type: ignore[method-assign,assignment]
        ApiGatewayResolver.context = _ResolverContext()  # type: ignore[assignment]
