"""The local stack as a chaos run's child process: crash hooks installed, then `kling-pipeline local`.

`python -m kling_local.chaos.stack_child '<json StackChildConfig>'` prints the stack's state as one JSON
line when it accepts work, and runs until SIGTERM (clean stop) or SIGKILL (the fault). The handlers reach
AWS through the fault proxy (`AWS_ENDPOINT_URL`); the stack's own machinery (provisioning, the queue
pollers standing in for Lambda's) talks to the endpoint directly, as AWS's own services would.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from pydantic import BaseModel

from kling_local.chaos.crashes import CrashInjector, CrashPlan
from kling_local.serving import stop_signals
from kling_local.stack.runner import LocalStack


class StackChildConfig(BaseModel):
    aws_endpoint_url: str
    handler_aws_endpoint_url: str
    api_port: int = 0
    env: dict[str, str] = {}
    max_visibility_timeout_s: int | None = None
    crash_seed: int = 0
    crash_cover: bool = False
    crash_rate: float = 0.0
    crash_max: int = 400
    crash_log: str | None = None


def main(argv: list[str]) -> int:
    config = StackChildConfig.model_validate_json(argv[0])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.crash_cover or config.crash_rate > 0:
        CrashInjector(
            CrashPlan(
                seed=config.crash_seed,
                cover=config.crash_cover,
                rate=config.crash_rate,
                max_crashes=config.crash_max,
                log_path=Path(config.crash_log) if config.crash_log else None,
            )
        ).install()
    stack = LocalStack(
        aws_endpoint_url=config.aws_endpoint_url,
        simulator=False,
        api_port=config.api_port,
        env_overrides={**config.env, "AWS_ENDPOINT_URL": config.handler_aws_endpoint_url},
        max_visibility_timeout_s=config.max_visibility_timeout_s,
    )
    with stop_signals() as stopping:
        stack.start()
        try:
            print(json.dumps(stack.state()), flush=True)
            while not stopping.wait(0.5):
                pass
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
