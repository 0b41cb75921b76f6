"""The simulated EvoLink gateway: calls back only on completion, failure or cancellation (seed 000),
with a 10 s timeout and up to 3 retries per body."""

from __future__ import annotations

from kling_local.simulator.engine import CallbackPolicy
from kling_local.simulator.evolink import routes, wire
from kling_local.simulator.tasks import TaskState

POLICY = CallbackPolicy(
    render=wire.task_object,
    states=frozenset({TaskState.SUCCEEDED, TaskState.FAILED}),
    retries=3,
)
ROUTES = routes.ROUTES
