"""A local stand-in for the three video providers (official Kling, EvoLink, kling3api).

Faithful wire formats (docs/providers.md), real JWT checks, real playable MP4 outputs behind expiring
links, callbacks, and fault knobs — so the pipeline can be tested end to end with no account and no
network. Start it in-process with `SimulatorServer` or from the CLI with `kling-pipeline simulate`.
"""

from __future__ import annotations

from kling_local.simulator.config import SimConfig, SimCredentials
from kling_local.simulator.server import SimulatorServer, serve_forever
from kling_local.simulator.tags import Tag

__all__ = ["SimConfig", "SimCredentials", "SimulatorServer", "Tag", "serve_forever"]
