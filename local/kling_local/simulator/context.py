"""What every route needs, hung on the Starlette app (`app.state.sim`) rather than on globals.

Several simulators can run in one process (a test per provider, a benchmark beside the local stack), so
nothing lives at module level: routes reach their engine and credentials through the request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from starlette.requests import Request

from kling_local.simulator.config import SimCredentials
from kling_local.simulator.engine import Engine
from kling_local.simulator.links import LinkSigner


@dataclass(frozen=True)
class SimContext:
    engine: Engine
    credentials: SimCredentials
    signer: LinkSigner


def sim(request: Request) -> SimContext:
    return cast(SimContext, request.app.state.sim)


async def read_json_object(request: Request) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is missing, not JSON, or not an object."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
