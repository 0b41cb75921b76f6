"""The simulated official Kling API: video routes, custom elements, and its callback behaviour.

Kling calls back on every state change after create (processing, then succeed or failed), once, with
the bare task object as the body; it documents no retries.
"""

from __future__ import annotations

from kling_local.simulator.engine import CallbackPolicy
from kling_local.simulator.kling import elements, videos, wire
from kling_local.simulator.tasks import TaskState

POLICY = CallbackPolicy(
    render=wire.render,
    states=frozenset({TaskState.PROCESSING, TaskState.SUCCEEDED, TaskState.FAILED}),
    retries=0,
)
ROUTES = [*elements.ROUTES, *videos.ROUTES]
