"""`LocalStack`: moto + resources from template.yaml + in-process handlers + front door + simulator.

With `aws_endpoint_url` (an endpoint from `kling-pipeline aws`), no moto is started or reset: the
template's resources are created there or reused, and all state lives there, so the stack can be killed
and started again without losing work (see `endpoint`).

Start order matters and is fixed here: the front door's socket is bound first (its URL is the callback
base), then moto and the simulator start (their URLs go into the environment), then the environment is
applied to this process, the Step Functions shim is installed, resources are created, queue consumers
start, and the front door opens last, when everything behind it exists.

The handlers' environment is built by `environment.stack_environment` (template < the user's §7
variables < local wiring < `env_overrides`) and everything set is restored on `stop()`.

Only one LocalStack can run per process: moto's backends, `os.environ` and the moto patch are global.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self, TypeVar

import boto3
from moto.server import ThreadedMotoServer

from kling_local import moto_dynamodb
from kling_local.serving import stop_signals
from kling_local.stack import stepfunctions
from kling_local.stack.consumers import QueueConsumer
from kling_local.stack.environment import (
    EnvironmentPatch,
    provider_secret_value,
    reset_process_caches,
    stack_environment,
    webhook_secret_value,
)
from kling_local.stack.frontdoor import FrontDoor
from kling_local.stack.intrinsics import Resolver, StackContext
from kling_local.stack.lambda_api import LambdaApi
from kling_local.stack.lambdas import FunctionRegistry, ensure_importable, function_specs, union_environment
from kling_local.stack.resources import Provisioned, Provisioner
from kling_local.stack.routes import gateway_responses, parse_api_keys, routes_from
from kling_local.stack.template import Template

if TYPE_CHECKING:
    from kling_local.simulator.config import SimAccount, SimConfig
    from kling_local.simulator.server import SimulatorServer

logger = logging.getLogger(__name__)

DEFAULT_STACK_NAME: Final = "kling-pipeline-local"
PROVIDER_CREDENTIALS: Final = "ProviderCredentialsSecret"
WEBHOOK_SECRET: Final = "WebhookSigningSecret"  # noqa: S105 - a logical id, not a secret
MEDIA_BUCKET: Final = "MediaBucket"
EVENT_BUS: Final = "EventBus"

__all__ = ["LocalStack", "reset_process_caches", "serve_until_signalled"]

_T = TypeVar("_T")


def default_template_path() -> Path:
    """`./template.yaml`, else the repository's (this file is local/kling_local/stack/runner.py)."""
    here = Path.cwd() / "template.yaml"
    return here if here.exists() else Path(__file__).resolve().parents[3] / "template.yaml"


class LocalStack:
    """The whole pipeline on loopback. `start()` returns when every part accepts work.

    >>> with LocalStack(simulator=False) as stack:
    ...     stack.api_url, stack.aws_endpoint_url, stack.bucket
    """

    _running: ClassVar[LocalStack | None] = None
    _running_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        template_path: str | Path | None = None,
        api_port: int = 0,
        aws_port: int = 0,
        simulator: bool = True,
        simulator_port: int = 0,
        simulator_config: SimConfig | None = None,
        simulator_accounts: Sequence[SimAccount] = (),
        queue_workers: int = 1,
        host: str = "127.0.0.1",
        region: str = "us-east-1",
        stack_name: str = DEFAULT_STACK_NAME,
        env_overrides: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        max_visibility_timeout_s: int | None = None,
        aws_endpoint_url: str | None = None,
    ) -> None:
        self.template_path = Path(template_path) if template_path else default_template_path()
        self._api_port, self._aws_port, self._host = api_port, aws_port, host
        self._with_simulator, self._simulator_port = simulator, simulator_port
        self._simulator_config = simulator_config
        self._simulator_accounts = tuple(simulator_accounts)  # several accounts per provider (capacity)
        self._queue_workers = queue_workers  # concurrent invocations per SQS mapping, as Lambda scales out
        self._region, self._stack_name = region, stack_name
        self._env_overrides = dict(env_overrides or {})
        self._parameter_overrides = dict(parameter_overrides or {})
        self._max_visibility_timeout_s = max_visibility_timeout_s

        self.resources: Provisioned | None = None
        self._front: FrontDoor | None = None
        self._moto: ThreadedMotoServer | None = None
        self._external_aws = aws_endpoint_url.rstrip("/") if aws_endpoint_url else None
        self._aws_endpoint_url: str | None = None
        self._lambda_api: LambdaApi | None = None
        self._simulator: SimulatorServer | None = None
        self._consumers: list[QueueConsumer] = []
        self._env_patch = EnvironmentPatch()
        self._added_sys_path: str | None = None
        self._api_keys: dict[str, str] = {}

    # -- properties ----------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self._require(self._front, "front door").url

    @property
    def aws_endpoint_url(self) -> str:
        return self._require(self._aws_endpoint_url, "moto")

    @property
    def region(self) -> str:
        return self._region

    @property
    def bucket(self) -> str | None:
        buckets = self._require(self.resources, "resources").buckets
        return buckets.get(MEDIA_BUCKET) or next(iter(buckets.values()), None)

    @property
    def event_bus_name(self) -> str:
        buses = self._require(self.resources, "resources").event_buses
        return buses.get(EVENT_BUS) or next(iter(buses.values()), "default")

    @property
    def api_keys(self) -> dict[str, str]:
        """{api key: tenant id} accepted by the front door."""
        return dict(self._api_keys)

    @property
    def simulator(self) -> SimulatorServer | None:
        return self._simulator

    @staticmethod
    def _require(value: _T | None, what: str) -> _T:
        if value is None:
            raise RuntimeError(f"the local stack is not started ({what} missing)")
        return value

    def state(self) -> dict[str, Any]:
        """What a client needs to talk to the stack (the CLI prints it and writes it to the state file)."""
        return {
            "api_url": self.api_url,
            "aws_endpoint_url": self.aws_endpoint_url,
            "region": self.region,
            "bucket": self.bucket,
            "event_bus_name": self.event_bus_name,
            "generations_table": self._require(self.resources, "resources").tables.get("GenerationsTable"),
            "api_keys": self.api_keys,
            "simulator_url": self._simulator.url if self._simulator else None,
        }

    def write_state_file(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.state(), indent=2) + "\n", encoding="utf-8")
        return target

    def client(self, service: str) -> Any:
        """A boto3 client for `service` pointed at this stack's moto server."""
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            region_name=self.region,
            endpoint_url=self.aws_endpoint_url,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto's dummy credentials
        )

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Self:
        with LocalStack._running_lock:
            if LocalStack._running is not None:
                raise RuntimeError("a LocalStack is already running in this process")
            LocalStack._running = self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        template = Template.load(self.template_path)
        self._front = FrontDoor(self._host, self._api_port)
        if self._external_aws is not None:
            self._aws_endpoint_url = self._external_aws
        else:
            self._start_moto()
        if self._with_simulator:
            self._start_simulator()
        resolver = Resolver(
            template,
            StackContext(
                stack_name=self._stack_name,
                region=self._region,
                aws_endpoint_url=self.aws_endpoint_url,
                parameter_overrides=self._parameter_overrides,
            ),
        )
        specs = function_specs(template, resolver)
        environment = stack_environment(
            union_environment(specs),
            aws_endpoint_url=self.aws_endpoint_url,
            region=self.region,
            front_door_url=self._front.url,
            simulator_env=self._simulator.provider_env() if self._simulator else None,
            overrides=self._env_overrides,
        )
        self._env_patch.apply(environment)
        self._api_keys = parse_api_keys(environment["LOCAL_API_KEYS"])
        if ensure_importable(template.directory):
            self._added_sys_path = str(template.directory)
        reset_process_caches()
        registry = FunctionRegistry(specs)
        invoke_url = None
        if self._external_aws is None:
            stepfunctions.install(registry)
        else:  # the endpoint's state machines reach these handlers through Lambda's Invoke API
            self._lambda_api = LambdaApi(registry, self._host)
            self._lambda_api.start()
            invoke_url = self._lambda_api.url
        self.resources = Provisioner(
            template,
            resolver,
            specs,
            endpoint_url=self.aws_endpoint_url,
            secret_values={
                PROVIDER_CREDENTIALS: provider_secret_value(),
                WEBHOOK_SECRET: webhook_secret_value(),
            },
            max_visibility_timeout_s=self._max_visibility_timeout_s,
            invoke_url=invoke_url,
        ).provision()
        for mapping in self.resources.mappings:
            consumer = QueueConsumer(
                mapping,
                registry,
                self.client("sqs"),
                region=self.region,
                account_id=resolver.context.account_id,
                workers=self._queue_workers,
            )
            consumer.start()
            self._consumers.append(consumer)
        self._front.configure(
            routes_from(template, resolver, specs),
            registry,
            self._api_keys,
            resolver.context.account_id,
            gateway_responses(template, resolver),
        )
        self._front.start()
        logger.info("local stack up: api %s, aws %s", self.api_url, self.aws_endpoint_url)

    def _start_moto(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per AWS call otherwise
        moto_dynamodb.install()
        self._moto = ThreadedMotoServer(ip_address=self._host, port=self._aws_port, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self._aws_endpoint_url = f"http://{host}:{port}"
        self._reset_moto()

    def _reset_moto(self) -> None:
        """moto's backends are process-global: a previous stack's (or test's) resources must not leak in."""
        url = f"{self._aws_endpoint_url}/moto-api/reset"
        request = urllib.request.Request(url, method="POST")  # noqa: S310 - loopback moto server
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def _start_simulator(self) -> None:
        from kling_local.simulator.server import SimulatorServer

        self._simulator = SimulatorServer(
            self._host,
            port=self._simulator_port,
            config=self._simulator_config,
            accounts=self._simulator_accounts,
        )
        self._simulator.start()

    def stop(self) -> None:
        """Stop everything started, in reverse order; safe to call twice or after a failed start."""
        if self._front is not None:
            self._front.stop()
            self._front = None
        for consumer in self._consumers:
            consumer.request_stop()
        for consumer in self._consumers:
            consumer.stop()
        self._consumers.clear()
        if self._simulator is not None:
            self._simulator.stop()
            self._simulator = None
        if self._lambda_api is not None:
            self._lambda_api.stop()
            self._lambda_api = None
        stepfunctions.uninstall()
        if self._moto is not None:
            try:
                self._reset_moto()
            except OSError:
                logger.warning("could not reset moto on stop", exc_info=True)
            self._moto.stop()
            self._moto = None
        self._env_patch.restore()
        if self._added_sys_path is not None and self._added_sys_path in sys.path:
            sys.path.remove(self._added_sys_path)
            self._added_sys_path = None
        reset_process_caches()
        with LocalStack._running_lock:
            if LocalStack._running is self:
                LocalStack._running = None


def serve_until_signalled(stack: LocalStack, state_file: str | Path | None) -> None:
    """The CLI's `local`: start, write and print the state, run until Ctrl-C or SIGTERM, stop cleanly.

    The state file is removed on a clean stop, so its presence means "a stack is (probably) running".
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("botocore").setLevel(logging.WARNING)  # "Found credentials ..." per client
    with stop_signals() as stopping:
        stack.start()
        try:
            if state_file:
                stack.write_state_file(state_file)
            print(json.dumps(stack.state(), indent=2), flush=True)
            while not stopping.wait(0.5):
                pass
        finally:
            stack.stop()
            if state_file:
                Path(state_file).unlink(missing_ok=True)  # the file exists while the stack runs
