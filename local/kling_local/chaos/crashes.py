"""Handler crashes right after an AWS call returned: every side-effect boundary, at least once.

Installed by the chaos stack process (`stack_child`) — never by production code — in two places:
- a botocore `after-call` handler registered on every botocore session this process creates (the
  pipeline's cached clients each come from their own `boto3.session.Session()`), which counts the
  mutating AWS calls of the current invocation and decides whether the process "dies" right there;
- a wrapper around `FunctionRegistry.invoke` that runs each invocation on a thread of its own and
  answers the invoker with the error a crashed Lambda runtime reports (`Runtime.ExitError`) as soon as
  the crash happens.

A crash must not unwind: a dead process runs no `finally`, no `except BaseException: abort()`, no
idempotency cleanup. So the crashing thread does not raise — it parks forever right after the AWS call
returned (a daemon thread, gone with the process), and the invocation is over for everyone else. It leaves
whatever the previous calls did and nothing more.

A side-effect boundary is (function, service.operation, k): right after the k-th call (k capped at 3) of a
mutating operation (Put/Update/Delete/Send/Start/Create/Complete/Upload/Abort...) in one invocation;
reads are not boundaries (nothing changed). Until a boundary has crashed once (`cover`), an invocation
reaching it crashes there with the seeded probability `cover_share` (not always the first one, so a single
message is not crashed at every boundary in a row), plus a seeded share `rate` of random crashes at any
boundary. Crashes are appended to `log_path` (JSON lines), read back on start, so a restarted stack does
not crash again at a boundary already covered.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import botocore.session

from kling_local.stack.lambdas import FunctionRegistry

MAX_OCCURRENCE: Final = 3
_MUTATING: Final = (
    "Put",
    "Update",
    "Delete",
    "Send",
    "Start",
    "Stop",
    "Create",
    "Complete",
    "Upload",
    "Abort",
    "BatchWrite",
    "TransactWrite",
    "Copy",
    "Change",
)


class HandlerCrashed(Exception):
    """What the invoker sees: Lambda's `Runtime.ExitError` for a crashed runtime."""


@dataclass
class CrashPlan:
    seed: int = 0
    cover: bool = True
    cover_share: float = 0.35
    rate: float = 0.0
    max_crashes: int = 400
    log_path: Path | None = None


class _Invocation(threading.local):
    function: str | None = None
    invocation: int = 0
    crashed: threading.Event | None = None

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()


class CrashInjector:
    def __init__(self, plan: CrashPlan) -> None:
        self.plan = plan
        self._local = _Invocation()
        self._lock = threading.Lock()
        self._covered: set[str] = set()
        self._crashes = 0
        self._invocations = 0
        if plan.log_path is not None and plan.log_path.exists():
            for line in plan.log_path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    self._covered.add(json.loads(line)["boundary"])
                    self._crashes += 1

    def install(self) -> None:
        injector = self
        original_init = botocore.session.Session.__init__
        original_invoke = FunctionRegistry.invoke

        def init(session: botocore.session.Session, *args: Any, **kwargs: Any) -> None:
            original_init(session, *args, **kwargs)
            session.register("after-call", injector.after_call)

        def invoke(registry: FunctionRegistry, ref: str, event: Any) -> Any:
            return injector.run_invocation(original_invoke, registry, ref, event)

        setattr(botocore.session.Session, "__init__", init)  # noqa: B010 - the hook itself
        setattr(FunctionRegistry, "invoke", invoke)  # noqa: B010

    def run_invocation(self, original: Any, registry: FunctionRegistry, ref: str, event: Any) -> Any:
        """One invocation on its own thread; returns its result, or HandlerCrashed when it died."""
        spec = registry.get(ref)
        with self._lock:
            self._invocations += 1
            number = self._invocations
        ended, crashed = threading.Event(), threading.Event()
        outcome: dict[str, Any] = {}

        def run() -> None:
            local = self._local
            local.function, local.invocation, local.crashed = spec.logical_id, number, crashed
            local.calls = Counter()
            try:
                outcome["result"] = original(registry, ref, event)
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                local.function = None
                ended.set()

        threading.Thread(target=run, name=f"invoke-{spec.logical_id}-{number}", daemon=True).start()
        while not ended.wait(0.05):
            if crashed.is_set():
                raise HandlerCrashed(f"Runtime.ExitError: {spec.logical_id} invocation {number} crashed")
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    def after_call(self, event_name: str = "", **kwargs: Any) -> None:
        local = self._local
        function = local.function
        if function is None or local.crashed is None:
            return
        operation = str(getattr(kwargs.get("model"), "name", "?"))
        if not operation.startswith(_MUTATING):
            return
        service = event_name.split(".")[1] if event_name.count(".") >= 2 else "?"
        call = f"{service}.{operation}"
        local.calls[call] += 1
        boundary = f"{function}:{call}#{min(local.calls[call], MAX_OCCURRENCE)}"
        if self._should_crash(boundary, local.invocation):
            local.crashed.set()
            threading.Event().wait()  # the process is "dead": this thread never runs the handler again

    def _should_crash(self, boundary: str, invocation: int) -> bool:
        with self._lock:
            if self._crashes >= self.plan.max_crashes:
                return False
            digest = hashlib.sha256(f"{self.plan.seed}|{boundary}|{invocation}".encode()).digest()
            roll = int.from_bytes(digest[:8], "big") / 2**64
            uncovered = self.plan.cover and boundary not in self._covered
            if roll >= (self.plan.cover_share if uncovered else self.plan.rate):
                return False
            self._covered.add(boundary)
            self._crashes += 1
            if self.plan.log_path is not None:
                with self.plan.log_path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps({"boundary": boundary, "invocation": invocation}) + "\n")
            return True
