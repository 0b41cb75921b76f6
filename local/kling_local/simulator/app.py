"""The one Starlette app serving all three providers, downloads, sample inputs and /_sim on a single port.

One port keeps the local stack's configuration trivial (every `*_BASE_URL` is the same URL); the
providers' paths do not collide, except that EvoLink's `POST /v1/videos/generations` must be routed
before Kling's `/v1/videos/{endpoint}`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from kling_local import samples
from kling_local.simulator import control, downloads, evolink, kling, kling3api
from kling_local.simulator.context import SimContext
from kling_local.simulator.middleware import RecordingMiddleware


def register_policies(context: SimContext) -> None:
    """Tell the engine how each provider calls back (kling3api has no callbacks)."""
    context.engine.register("kling", kling.POLICY)
    context.engine.register("evolink", evolink.POLICY)


def build_app(context: SimContext) -> Starlette:
    register_policies(context)
    routes = [
        *control.ROUTES,
        *downloads.ROUTES,
        *samples.ROUTES,  # input media for the local stack (http:// on loopback is probed like https://)
        *evolink.ROUTES,
        *kling.ROUTES,
        *kling3api.ROUTES,
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RecordingMiddleware, recorder=context.engine.recorder)],
    )
    app.state.sim = context
    return app
