"""The simulated kling3api gateway (seed 004): no callbacks, so no callback policy — poll only."""

from __future__ import annotations

from kling_local.simulator.kling3api import routes

ROUTES = routes.ROUTES
