"""The one process environment every in-process handler runs with, and how it is set and undone.

Precedence, lowest first: the functions' template environment (Globals + their own, refs resolved to local
names) < this process's environment for the DESIGN.md §7 names (`USER_TUNABLE`) < the local wiring (moto
endpoint and dummy credentials, the simulator's URLs and keys when it runs, the front door as
`PUBLIC_BASE_URL`) < the caller's overrides. Without the simulator, an exported `PUBLIC_BASE_URL` (say, a
tunnel real providers can reach) is kept.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Final

DEFAULT_API_KEYS: Final = "local-dev-key=demo"

# DESIGN.md §7: names whose value in this process's environment beats the template's.
USER_TUNABLE: Final = frozenset(
    {
        "KLING_API_BASE_URL",
        "KLING_ACCESS_KEY",
        "KLING_SECRET_KEY",
        "EVOLINK_API_BASE_URL",
        "EVOLINK_API_KEY",
        "KLING3API_BASE_URL",
        "KLING3API_API_KEY",
        "KLING3API_USD_PER_CREDIT",
        "PUBLIC_BASE_URL",
        "FALLBACK_FIRST_POLL_S",
        "FALLBACK_MAX_INTERVAL_S",
        "TASK_DEADLINE_S",
        "LOCAL_API_KEYS",
        "LOCAL_ALLOW_PRIVATE_WEBHOOKS",
        "LOCAL_ALLOW_HTTP_LOOPBACK",
        "HTTP_TIMEOUT_S",
        "PRESIGN_TTL_S",
        "POWERTOOLS_LOG_LEVEL",
        "LOG_LEVEL",
    }
)
# The keys of ProviderCredentialsSecret (config.py reads the secret's keys as variable names).
PROVIDER_SECRET_KEYS: Final = ("KLING_ACCESS_KEY", "KLING_SECRET_KEY", "EVOLINK_API_KEY", "KLING3API_API_KEY")
# Variables that would send boto3 somewhere other than moto.
_UNSET_FOR_MOTO: Final = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


def stack_environment(
    template_env: Mapping[str, str],
    *,
    aws_endpoint_url: str,
    region: str,
    front_door_url: str,
    simulator_env: Mapping[str, str] | None,
    overrides: Mapping[str, str],
) -> dict[str, str]:
    """The variables to set for the handlers, by the precedence in the module docstring."""
    env = dict(template_env)
    env.update({key: os.environ[key] for key in USER_TUNABLE if key in os.environ})
    env.update(
        {
            "AWS_ENDPOINT_URL": aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            # moto's Step Functions interpreter reaches Lambda at http://localhost:$MOTO_PORT.
            "MOTO_PORT": aws_endpoint_url.rsplit(":", 1)[-1],
        }
    )
    env.setdefault("LOCAL_API_KEYS", DEFAULT_API_KEYS)
    env.setdefault("LOCAL_ALLOW_HTTP_LOOPBACK", "1")  # our own callback base is http://127.0.0.1
    env.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    if simulator_env is not None:
        env.update(simulator_env)
        env["PUBLIC_BASE_URL"] = front_door_url
    elif "PUBLIC_BASE_URL" not in os.environ:
        env["PUBLIC_BASE_URL"] = front_door_url
    env.update(overrides)
    return env


def provider_secret_value() -> str:
    """ProviderCredentialsSecret's local value: the credentials now in the environment, as JSON."""
    return json.dumps({key: os.environ[key] for key in PROVIDER_SECRET_KEYS if os.environ.get(key)})


class EnvironmentPatch:
    """Sets variables in `os.environ` and puts every one of them back on `restore()`."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def apply(self, env: Mapping[str, str]) -> None:
        for key in _UNSET_FOR_MOTO:
            if key in os.environ:
                self._saved.setdefault(key, os.environ.pop(key))
        for key, value in env.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()


def reset_process_caches() -> None:
    """Forget cached settings, clients, stores and secrets so handlers see the current environment."""
    from kling_pipeline.caches import reset_caches

    reset_caches()
    parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters")
    if parameters is not None:
        parameters.clear_caches()
