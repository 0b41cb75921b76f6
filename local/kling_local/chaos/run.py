"""The chaos run: many generations, every fault at once, then an accounting of each one.

Processes and threads of a run (all on 127.0.0.1):
- the AWS endpoint (`kling-pipeline aws`, a child process): the durable state;
- the fault proxy (a thread here) between the handlers and that endpoint;
- the local stack (`stack_child`, a child process with the crash hooks), SIGKILLed and restarted;
- the provider simulator (threads here) with its fault knobs all on, so it outlives stack kills as a
  provider would; the webhook receiver and the status watcher (threads here).

The run submits generations (with `Idempotency-Key`, retrying like a careful client), cancels some, posts
forged callbacks, kills the stack, then heals the faults (Jepsen's final heal: AWS and the provider answer
again) and waits for every generation to settle. `Accounting` then counts what the issue asks for; every
`must_be_zero` entry is a violation of a guarantee.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx

from kling_local.chaos.faults import FaultPlan, FaultProxy
from kling_local.chaos.processes import AwsEndpointProcess, ChildProcess
from kling_local.chaos.stack_child import StackChildConfig
from kling_local.mp4gen import make_mp4
from kling_local.simulator import SimConfig, SimulatorServer

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
RANK = {"queued": 0, "submitted": 1, "processing": 2, "succeeded": 3, "failed": 3, "canceled": 3}
API_KEY, TENANT = "chaos-key", "chaos-tenant"
PROMPTS = ("A lighthouse at dawn", "A fox running through snow", "Waves on a black sand beach")


@dataclass
class ChaosConfig:
    """One run's size and faults; `make chaos` and the reduced test differ only here."""

    generations: int = 40
    rate_per_s: float = 4.0
    seed: int = 12
    aws_fault_rate: float = 0.1
    crash_cover: bool = True
    crash_rate: float = 0.0
    stack_kills: int = 1
    kill_down_s: float = 2.0
    webhook_share: float = 0.6
    cancel_share: float = 0.1
    never_share: float = 0.05
    forged_callbacks: int = 10
    task_deadline_s: int = 45
    settle_timeout_s: float = 300.0
    visibility_timeout_s: int = 3
    storm_extra_s: float = 30.0  # AWS and provider faults stay on this long after the last create

    def simulator_storm(self) -> dict[str, Any]:
        """The provider's knobs, all at once."""
        return {
            "failure_rate": 0.1,
            "callback_drop_rate": 0.25,
            "callback_duplicate_rate": 0.25,
            "callback_out_of_order": True,
            "callback_retry_backoff_s": 0.2,
            "error_5xx_rate": 0.05,
            "error_429_rate": 0.05,
            "create_lost_response_count": max(2, self.generations // 20),
            "download_fail_after_bytes": 20_000,
            "download_fail_count": max(2, self.generations // 20),
            "link_ttl_s": 20.0,
        }


CALM_SIMULATOR: dict[str, Any] = {
    "failure_rate": 0.0,
    "callback_drop_rate": 0.0,
    "callback_duplicate_rate": 0.0,
    "callback_out_of_order": False,
    "error_5xx_rate": 0.0,
    "error_429_rate": 0.0,
    "create_lost_response_count": 0,
    "download_fail_after_bytes": None,
    "download_fail_count": None,
    "link_ttl_s": 600.0,
}


# ---- helpers: webhook receiver, status watcher -------------------------------------------------------


class WebhookReceiver:
    """Records every webhook; answers 500 to the first attempt of a seeded share of message ids."""

    def __init__(self, seed: int, fail_first_share: float = 0.3) -> None:
        self.messages: list[dict[str, Any]] = []
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                message_id = self.headers.get("webhook-id", "")
                roll = int(hashlib.sha256(f"{seed}|{message_id}".encode()).hexdigest()[:8], 16) / 16**8
                with receiver._lock:
                    receiver._attempts[message_id] += 1
                    first = receiver._attempts[message_id] == 1
                    failing = first and roll < fail_first_share
                    if not failing:
                        receiver.messages.append({"id": message_id, "body": body.decode("utf-8", "replace")})
                self.send_response(500 if failing else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Watcher:
    """Polls every generation's status through the API and records regressions (rank going down, or a
    final status changing)."""

    def __init__(self, api: httpx.Client) -> None:
        self._api = api
        self.seen: dict[str, list[str]] = defaultdict(list)
        self.regressions: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def observe(self, generation_id: str, status: str) -> None:
        history = self.seen[generation_id]
        if history and history[-1] == status:
            return
        if history:
            last = history[-1]
            if RANK[status] < RANK[last] or (last in TERMINAL and status != last):
                self.regressions.append({"id": generation_id, "from": last, "to": status})
        history.append(status)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                for item in list_generations(self._api):
                    self.observe(item["id"], item["status"])
            except (httpx.HTTPError, KeyError, ValueError):
                continue  # the stack is down or a poll crashed: look again next round


def list_generations(api: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = api.get("/v1/generations", params=params)
        response.raise_for_status()
        page = response.json()
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- the run -----------------------------------------------------------------------------------------


@dataclass
class Submission:
    index: int
    key: str
    body: dict[str, Any]
    cancel_after_s: float | None
    generation_id: str | None = None
    outcome: str = "pending"  # accepted | refused | gave_up
    attempts: int = 0
    create_status: int | None = None
    create_answer: str = ""


@dataclass
class RunRecord:
    config: dict[str, Any]
    submissions: list[Submission] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)
    forged: list[int] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    settled_at_s: float | None = None


class ChaosRun:
    def __init__(self, config: ChaosConfig, workdir: Path | None = None) -> None:
        self.config = config
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kling-chaos-"))
        self.rng = random.Random(config.seed)
        self.record = RunRecord(config=asdict(config))
        self._endpoint: AwsEndpointProcess | None = None
        self._stack: ChildProcess | None = None
        self._stack_lock = threading.Lock()
        self.sim: SimulatorServer | None = None
        self.proxy: FaultProxy | None = None
        self.webhooks: WebhookReceiver | None = None
        self.api_port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.state: dict[str, Any] = {}
        self.events = EventLog()

    # -- infrastructure ------------------------------------------------------------------------------

    def _stack_config(self) -> str:
        assert self._endpoint is not None and self.proxy is not None and self.sim is not None
        assert self.webhooks is not None
        env = {
            **self.sim.provider_env(),
            "LOCAL_API_KEYS": f"{API_KEY}={TENANT}",
            "LOCAL_ALLOW_PRIVATE_WEBHOOKS": "1",
            "FALLBACK_FIRST_POLL_S": "2",
            "FALLBACK_MAX_INTERVAL_S": "3",
            "TASK_DEADLINE_S": str(self.config.task_deadline_s),
            "SUBMIT_RETRY_BASE_S": "1",
            "SUBMIT_RETRY_MAX_S": "3",
            "WEBHOOK_RETRY_SCHEDULE_S": "0,1,2,2,3,3,5,5",
            "HTTP_TIMEOUT_S": "10",
            # Time is compressed like every other knob: a crashed ingest's lease runs out in seconds.
            "INGEST_LEASE_S": "5",
            "ANNOUNCE_CLAIM_S": "5",
            "SUBMIT_LEASE_S": "30",
            # Admission control's clocks, compressed the same way: an account that answered 429 rests 1 s,
            # a crashed holder's slot comes back after 60 s (past the 45 s deadline of any task it ran).
            "ACCOUNT_BACKOFF_S": "1",
            "SLOT_LEASE_S": "60",
            "DEFAULT_ACCOUNT_CONCURRENCY": "20",
        }
        return StackChildConfig(
            aws_endpoint_url=self._endpoint.url,
            handler_aws_endpoint_url=self.proxy.url,
            api_port=self.api_port,
            env=env,
            max_visibility_timeout_s=self.config.visibility_timeout_s,
            crash_seed=self.config.seed,
            crash_cover=self.config.crash_cover,
            crash_rate=self.config.crash_rate,
            crash_log=str(self.workdir / "crashes.jsonl"),
        ).model_dump_json()

    def _start_stack(self) -> None:
        child = ChildProcess(
            ["-m", "kling_local.chaos.stack_child", self._stack_config()],
            ready_key="api_url",
            name="local stack",
            log_path=self.workdir / "stack.log",
        ).start()
        with self._stack_lock:
            self._stack = child
        self.state = child.ready

    def kill_stack(self) -> None:
        """SIGKILL the stack, keep it down for `kill_down_s`, start it again on the same ports."""
        with self._stack_lock:
            child, self._stack = self._stack, None
        if child is not None:
            child.kill()
        self.record.kills.append(round(time.monotonic() - self._t0, 2))
        time.sleep(self.config.kill_down_s)
        self._start_stack()

    def aws(self, service: str) -> Any:
        assert self._endpoint is not None
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self._endpoint.url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto's dummy credentials
        )

    def _capture_events(self) -> str:
        """An EventBridge rule sending every pipeline event on the stack's bus to a queue we read."""
        sqs, events = self.aws("sqs"), self.aws("events")
        url = str(sqs.create_queue(QueueName="chaos-captured-events")["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = self.state["event_bus_name"]
        events.put_rule(
            Name="chaos-capture", EventBusName=bus, EventPattern=json.dumps({"source": ["kling-pipeline"]})
        )
        events.put_targets(Rule="chaos-capture", EventBusName=bus, Targets=[{"Id": "capture", "Arn": arn}])
        return url

    # -- the workload --------------------------------------------------------------------------------

    def _plan_submissions(self) -> list[Submission]:
        plans = []
        for index in range(self.config.generations):
            prompt = self.rng.choice(PROMPTS)
            if self.rng.random() < self.config.never_share:
                prompt += " [sim:never]"
            body: dict[str, Any] = {
                "mode": "text-to-video",
                "prompt": f"{prompt} #{index}",
                "duration": self.rng.choice((5, 10)),
            }
            if self.rng.random() < self.config.webhook_share:
                assert self.webhooks is not None
                body["webhook_url"] = self.webhooks.url
            cancel = self.rng.uniform(0, 4) if self.rng.random() < self.config.cancel_share else None
            plans.append(
                Submission(index, f"chaos-{self.config.seed}-{index}-{uuid.uuid4().hex[:8]}", body, cancel)
            )
        return plans

    def _submit(self, api: httpx.Client, submission: Submission) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            submission.attempts += 1
            try:
                response = api.post(
                    "/v1/generations", json=submission.body, headers={"Idempotency-Key": submission.key}
                )
            except httpx.HTTPError:
                time.sleep(1.0)
                continue
            submission.create_status = response.status_code
            submission.create_answer = response.text[:300]
            if response.status_code in (200, 201, 202):
                submission.generation_id = response.json()["id"]
                submission.outcome = "accepted"
                break
            if response.status_code == 409 and "in progress" not in response.text.lower():
                submission.outcome = "refused"
                return
            if response.status_code >= 500 or response.status_code in (409, 429):
                time.sleep(1.0)
                continue
            submission.outcome = "refused"
            return
        else:
            submission.outcome = "gave_up"
            return
        if submission.index % max(1, self.config.generations // max(1, self.config.forged_callbacks)) == 0:
            self._forge_callback(api, submission.generation_id, submission.index)
        if submission.cancel_after_s is not None and submission.generation_id:
            time.sleep(submission.cancel_after_s)
            for _ in range(30):
                try:
                    answer = api.post(f"/v1/generations/{submission.generation_id}/cancel")
                except httpx.HTTPError:
                    time.sleep(1.0)
                    continue
                if answer.status_code < 500:
                    break
                time.sleep(1.0)

    def _forge_callback(self, api: httpx.Client, generation_id: str | None, number: int) -> None:
        """A callback nobody sent (bad or missing token) claiming success with a foreign video URL."""
        token = "" if number % 2 else "?token=forged"
        body = {"task_id": "forged", "task_status": "succeed", "video_url": "http://127.0.0.1:9/evil.mp4"}
        try:
            answer = api.post(f"/v1/callbacks/kling/{generation_id}{token}", json=body)
            self.record.forged.append(answer.status_code)
        except httpx.HTTPError:
            self.record.forged.append(0)

    def run(self) -> Accounting:
        config = self.config
        self._t0 = time.monotonic()
        self.sim = SimulatorServer(config=SimConfig(generation_time_s=2.0, seed=config.seed)).start()
        self.webhooks = WebhookReceiver(config.seed)
        try:
            with AwsEndpointProcess(log_path=self.workdir / "aws.log") as endpoint:
                self._endpoint = endpoint
                self.proxy = FaultProxy(endpoint.url, FaultPlan(seed=config.seed, rate=0.0)).start()
                self._start_stack()
                events_queue = self._capture_events()
                return self._drive(events_queue)
        finally:
            with self._stack_lock:
                if self._stack is not None:
                    self._stack.terminate()
                    self._stack = None
            if self.proxy is not None:
                self.proxy.stop()
            self.webhooks.stop()
            self.sim.stop()

    def _drive(self, events_queue: str) -> Accounting:
        config = self.config
        assert self.sim is not None and self.proxy is not None
        submissions = self._plan_submissions()
        self.record.submissions = submissions
        api = httpx.Client(base_url=self.api_url, headers={"x-api-key": API_KEY}, timeout=60)
        watcher = Watcher(httpx.Client(base_url=self.api_url, headers={"x-api-key": API_KEY}, timeout=30))
        watcher.start()
        self.proxy.plan.rate = config.aws_fault_rate
        self.sim.configure(**config.simulator_storm())
        storm_s = config.generations / config.rate_per_s
        kill_times = [storm_s * (k + 1) / (config.stack_kills + 1) for k in range(config.stack_kills)]
        killer = threading.Thread(target=self._kill_at, args=(kill_times,), daemon=True)
        killer.start()
        with ThreadPoolExecutor(max_workers=min(64, config.generations)) as pool:
            futures = []
            for submission in submissions:
                futures.append(pool.submit(self._submit, api, submission))
                time.sleep(1.0 / config.rate_per_s)
            time.sleep(config.storm_extra_s)
            killer.join()
            # Heal: AWS and the provider behave again; crashes stay armed for boundaries not yet covered.
            self.proxy.plan.rate = 0.0
            self.sim.configure(**CALM_SIMULATOR)
            for future in futures:
                future.result()
        accepted = [s.generation_id for s in submissions if s.generation_id]
        settle_deadline = time.monotonic() + config.settle_timeout_s
        final: dict[str, dict[str, Any]] = {}
        while time.monotonic() < settle_deadline:
            try:
                final = {item["id"]: item for item in list_generations(api)}
            except httpx.HTTPError:
                time.sleep(1)
                continue
            for item in final.values():
                watcher.observe(item["id"], item["status"])
            if all(final.get(gid, {}).get("status") in TERMINAL for gid in accepted) and all(
                item["status"] in TERMINAL for item in final.values()
            ):
                self.record.settled_at_s = round(time.monotonic() - self._t0, 1)
                break
            time.sleep(1.0)
        self._await_announcements(final, events_queue)
        watcher.stop()
        self.record.duration_s = round(time.monotonic() - self._t0, 1)
        crash_log = self.workdir / "crashes.jsonl"
        if crash_log.exists():
            self.record.crashes = [
                json.loads(line)["boundary"] for line in crash_log.read_text().splitlines() if line.strip()
            ]
        return Accounting.collect(self, final, watcher)

    def _kill_at(self, times: list[float]) -> None:
        for at in times:
            delay = at - (time.monotonic() - self._t0)
            if delay > 0:
                time.sleep(delay)
            self.kill_stack()

    def _await_announcements(
        self, final: dict[str, dict[str, Any]], events_queue: str, timeout_s: float = 60.0
    ) -> None:
        """Events and webhooks trail the final state (a pending announcement is looked at again after its
        claim expires; webhooks retry): wait until every final outcome has both, or `timeout_s`."""
        assert self.webhooks is not None
        outcomes = {gid for gid, item in final.items() if item["status"] in OUTCOME_EVENTS}
        wanted = {gid for gid in outcomes if (final[gid].get("request") or {}).get("webhook_url")}
        sqs = self.aws("sqs")
        deadline = time.monotonic() + timeout_s
        while True:
            self.events.drain(sqs, events_queue)
            received = {_webhook_generation(m) for m in list(self.webhooks.messages)}
            evented = all(self.events.has_outcome(gid, final[gid]["status"]) for gid in outcomes)
            if (wanted <= received and evented) or time.monotonic() > deadline:
                return
            time.sleep(1.0)


def _webhook_generation(message: dict[str, Any]) -> str | None:
    try:
        return str(json.loads(message["body"])["data"]["id"])
    except (ValueError, KeyError, TypeError):
        return None


# ---- accounting --------------------------------------------------------------------------------------


@dataclass
class Accounting:
    counts: dict[str, Any]
    must_be_zero: dict[str, int]
    details: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def violations(self) -> dict[str, int]:
        return {name: value for name, value in self.must_be_zero.items() if value}

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "must_be_zero": self.must_be_zero, "details": self.details}

    def table(self) -> str:
        lines = ["chaos run accounting", "-" * 60]
        for name, value in self.counts.items():
            if not isinstance(value, dict):
                lines.append(f"{name:<46}{value!s:>14}")
            else:
                for key, sub in value.items():
                    lines.append(f"{name + '.' + str(key):<46}{sub!s:>14}")
        lines.append("-" * 60 + "\nmust be zero")
        for name, value in self.must_be_zero.items():
            mark = "ok" if value == 0 else "VIOLATED"
            lines.append(f"{name:<46}{value:>6}  {mark}")
        return "\n".join(lines)

    @classmethod
    def collect(cls, run: ChaosRun, final: dict[str, dict[str, Any]], watcher: Watcher) -> Accounting:
        assert run.sim is not None and run.webhooks is not None and run.proxy is not None
        record = run.record
        accepted = {s.generation_id for s in record.submissions if s.generation_id}
        outcomes = Counter(s.outcome for s in record.submissions)
        statuses = Counter(final.get(gid, {}).get("status", "missing") for gid in accepted)
        unacknowledged = sorted(set(final) - accepted)  # created, but the client never got the answer
        stuck = sorted(
            gid for gid in set(final) | accepted if final.get(gid, {}).get("status") not in TERMINAL
        )

        paid, unattributed, provider_sha = _paid_tasks(run.sim, final)
        unconfirmed_failures = sum(
            1 for item in final.values() if (item.get("error") or {}).get("code") == "create_unconfirmed"
        )
        paid_violations = []
        for gid in set(final) | accepted:
            item = final.get(gid, {})
            expected_zero_ok = item.get("status") in ("canceled", "failed") and not item.get(
                "provider_task_id"
            )
            count = paid.get(gid, 0)
            if count > 1 or (count == 0 and not expected_zero_ok):
                paid_violations.append({"id": gid, "paid_tasks": count, "status": item.get("status")})

        s3 = run.aws("s3")
        bucket = run.state["bucket"]
        missing_object, wrong_bytes = [], []
        for gid, item in final.items():
            if item.get("status") != "succeeded":
                continue
            outputs = item.get("outputs") or []
            if not outputs:
                missing_object.append(gid)
                continue
            for output in outputs:
                try:
                    data = s3.get_object(Bucket=output["bucket"], Key=output["key"])["Body"].read()
                except s3.exceptions.NoSuchKey:
                    missing_object.append(gid)
                    continue
                digest = hashlib.sha256(data).hexdigest()
                expected = provider_sha.get(item.get("provider_task_id") or "")
                if digest != output.get("sha256") or (expected is not None and digest != expected):
                    wrong_bytes.append(
                        {"id": gid, "s3": digest, "record": output.get("sha256"), "provider": expected}
                    )
        orphans = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        dropped_creates = run.proxy.injected.get("s3.CreateMultipartUpload:drop_after_apply", 0)

        hooks = _webhook_accounting(run.webhooks.messages, final)
        events_so_far = _event_accounting(run.events, final)
        suspects = sorted(set(events_so_far["missing"]) | set(hooks["missing"]) | set(stuck))
        raw_items = _raw_items(run.aws("dynamodb"), suspects)
        fallbacks = _fallback_histories(run.aws("stepfunctions"), stuck)
        events = _event_accounting(run.events, final)
        dlq = _dlq_contents(run.aws("sqs"))

        counts = {
            "submitted": len(record.submissions),
            "client_outcomes": dict(outcomes),
            "generations_accepted": len(accepted),
            "created_but_unacknowledged": len(unacknowledged),
            "final_state": dict(statuses),
            "paid_tasks_total": sum(paid.values()) + unattributed,
            "paid_tasks_unattributed": unattributed,
            "succeeded_objects_checked": sum(1 for i in final.values() if i.get("status") == "succeeded"),
            "webhook_messages": hooks["messages"],
            "webhook_ids": hooks["ids"],
            "webhook_duplicates_received": hooks["duplicates"],
            "events_by_type": events["by_type"],
            "orphaned_multipart_uploads": len(orphans),
            "create_multipart_answers_dropped": dropped_creates,
            "dlq_messages": {name: len(bodies) for name, bodies in dlq.items() if bodies},
            "aws_calls_through_proxy": run.proxy.summary()["calls"],
            "aws_faults_injected": run.proxy.summary()["by_kind"],
            "handler_crashes_injected": len(record.crashes),
            "crash_boundaries_by_function": dict(Counter(b.split("#")[0] for b in record.crashes)),
            "stack_kills": len(record.kills),
            "forged_callbacks_sent": len(record.forged),
            "duration_s": record.duration_s,
            "settled_at_s": record.settled_at_s,
        }
        must_be_zero = {
            "client_gave_up": outcomes.get("gave_up", 0),
            "valid_creates_refused": outcomes.get("refused", 0),
            # Every client request retries with its Idempotency-Key until answered: a generation no answer
            # named is a second one made for a request (a crashed create run again; store.request_keys).
            "generations_no_answer_named": len(unacknowledged),
            "stuck_not_final": len(stuck),
            "paid_tasks_not_exactly_one": len(paid_violations),
            # A create answer lost where nothing can be learnt (kling3api: no callback, no id of ours) leaves
            # a task nobody can name; its generation fails `create_unconfirmed` and is charged for it. Only
            # tasks beyond one per such generation are unexplained.
            "paid_tasks_unattributed_unexplained": max(0, unattributed - unconfirmed_failures),
            "succeeded_without_s3_object": len(missing_object),
            "succeeded_sha256_mismatch": len(wrong_bytes),
            "status_regressions": len(watcher.regressions),
            # A CreateMultipartUpload applied but answered by a dropped connection leaves an upload whose
            # id nobody ever saw; the bucket's AbortIncompleteMultipartUpload rule (1 day) removes it.
            # Any orphan beyond those is a leak.
            "orphaned_multipart_uploads_unexplained": max(0, len(orphans) - dropped_creates),
            "terminal_webhook_generations_without_message": len(hooks["missing"]),
            "webhook_ids_with_differing_bodies": len(hooks["differing"]),
            "generations_with_two_webhook_ids": len(hooks["two_ids"]),
            "terminal_generations_without_event": len(events["missing"]),
            "generations_with_events_of_two_outcomes": len(events["conflicting"]),
            "dlq_messages_of_unfinished_generations": sum(
                1
                for bodies in dlq.values()
                for body in bodies
                if final.get(_generation_in_body(body) or "", {}).get("status") not in TERMINAL
            ),
            "forged_callbacks_accepted": sum(1 for code in record.forged if 200 <= code < 300),
        }
        details = {
            "stuck": stuck,
            "paid_violations": paid_violations,
            "missing_object": missing_object,
            "wrong_bytes": wrong_bytes,
            "regressions": watcher.regressions,
            "orphaned_uploads": [u.get("Key") for u in orphans],
            "webhooks": {k: hooks[k] for k in ("missing", "differing", "two_ids")},
            "events": {k: events[k] for k in ("missing", "conflicting", "per_generation_max")},
            "dlq": dlq,
            "kills_at_s": record.kills,
            "crash_boundaries": sorted(record.crashes),
            "aws_faults_by_operation": run.proxy.summary()["by_operation"],
            "forged_callback_answers": dict(Counter(record.forged)),
            "final": {
                gid: [i["status"], (i.get("error") or {}).get("message"), i.get("provider")]
                for gid, i in sorted(final.items())
            },
            "paid_tasks_of_violations": {
                str(v["id"]): [t for t in run.sim.tasks() if str(v["id"]) in json.dumps(t)]
                for v in paid_violations
            },
            "refused_create_answers": [s.create_answer for s in record.submissions if s.outcome == "refused"],
            "refused_create_statuses": dict(
                Counter(s.create_status for s in record.submissions if s.outcome == "refused")
            ),
            "failed_by_error_code": dict(
                Counter((i.get("error") or {}).get("code") for i in final.values() if i["status"] == "failed")
            ),
            "webhook_body_samples": hooks["samples"],
            "unacknowledged": unacknowledged,
            "raw_items_of_unannounced_or_stuck": raw_items,
            "fallback_executions_of_stuck": fallbacks,
        }
        return cls(counts=counts, must_be_zero=must_be_zero, details=details, config=record.config)


def _paid_tasks(
    sim: SimulatorServer, final: dict[str, dict[str, Any]]
) -> tuple[Counter[str], int, dict[str, str]]:
    """Video tasks at the simulator per generation (callback URL, external id or the recorded task id),
    how many match no generation, and the sha256 of the bytes each task's output link serves."""
    by_task = {(i.get("provider"), i.get("provider_task_id")): gid for gid, i in final.items()}
    paid: Counter[str] = Counter()
    unattributed = 0
    provider_sha: dict[str, str] = {}
    for task in sim.tasks():
        if task["kind"] != "video":
            continue
        gid = _generation_in(task.get("callback_url")) or _generation_in(task.get("external_task_id"))
        gid = gid or by_task.get((task["provider"], task["task_id"]))
        if gid is None:
            unattributed += 1
        else:
            paid[gid] += 1
        spec = task.get("spec")
        if spec and task["state"] == "succeeded":
            path = make_mp4(spec["width"], spec["height"], spec["duration_s"], sound=spec["sound"])
            provider_sha[task["task_id"]] = hashlib.sha256(path.read_bytes()).hexdigest()
    return paid, unattributed, provider_sha


def _generation_in(text: str | None) -> str | None:
    if not text:
        return None
    for part in text.replace("?", "/").split("/"):
        if part.startswith("gen_"):
            return part
    return None


def _generation_in_body(body: str) -> str | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    found = value.get("generation_id") if isinstance(value, dict) else None
    return str(found) if found else _generation_in(body)


def _comparable(body: str) -> Any:
    """A webhook body without the presigned URLs, which are signed afresh for each attempt on purpose."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    for output in (data.get("data") or {}).get("outputs") or []:
        output.pop("url", None)
    return data


def _webhook_accounting(messages: list[dict[str, Any]], final: dict[str, dict[str, Any]]) -> dict[str, Any]:
    bodies: dict[str, list[Any]] = defaultdict(list)
    ids_per_generation: dict[str, set[str]] = defaultdict(set)
    for message in messages:
        bodies[message["id"]].append(_comparable(message["body"]))
        gid = _webhook_generation(message)
        if gid:
            ids_per_generation[gid].add(message["id"])
    wanted = [
        gid
        for gid, item in final.items()
        if item["status"] in ("succeeded", "failed") and (item.get("request") or {}).get("webhook_url")
    ]
    return {
        "messages": len(messages),
        "ids": len(bodies),
        "duplicates": sum(len(v) - 1 for v in bodies.values()),
        "missing": sorted(gid for gid in wanted if not ids_per_generation.get(gid)),
        "differing": sorted(mid for mid, items in bodies.items() if any(b != items[0] for b in items)),
        "two_ids": sorted(gid for gid, ids in ids_per_generation.items() if len(ids) > 1),
        "samples": {
            mid: items[:2] for mid, items in list(bodies.items()) if any(b != items[0] for b in items)
        },
    }


OUTCOME_EVENTS = {"succeeded": "Generation Succeeded", "failed": "Generation Failed"}


class EventLog:
    """The pipeline's EventBridge events, as captured by the run's rule into an SQS queue."""

    def __init__(self) -> None:
        self.per_generation: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_type: Counter[str] = Counter()

    def drain(self, sqs: Any, queue_url: str) -> None:
        for _ in range(2000):
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = batch.get("Messages", [])
            if not messages:
                return
            for message in messages:
                event = json.loads(message["Body"])
                detail = event.get("detail") or {}
                self.by_type[event.get("detail-type", "?")] += 1
                gid = detail.get("id") or detail.get("generation_id")
                if gid:
                    self.per_generation[str(gid)][event.get("detail-type", "?")] += 1
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def has_outcome(self, generation_id: str, status: str) -> bool:
        return bool(self.per_generation[generation_id].get(OUTCOME_EVENTS.get(status, ""), 0))


def _event_accounting(log: EventLog, final: dict[str, dict[str, Any]]) -> dict[str, Any]:
    per_generation, by_type, outcome_types = log.per_generation, log.by_type, OUTCOME_EVENTS
    missing = sorted(
        gid
        for gid, item in final.items()
        if item["status"] in outcome_types and not per_generation[gid].get(outcome_types[item["status"]])
    )
    conflicting = sorted(
        gid for gid, types in per_generation.items() if len(set(types) & set(outcome_types.values())) > 1
    )
    return {
        "by_type": dict(by_type),
        "missing": {gid: dict(per_generation.get(gid, {})) for gid in missing},
        "conflicting": conflicting,
        "per_generation_max": max((sum(c.values()) for c in per_generation.values()), default=0),
    }


def _raw_items(dynamodb: Any, generation_ids: list[str]) -> dict[str, Any]:
    """The stored items of generations whose announcement is missing (the bookkeeping tells why)."""
    found: dict[str, Any] = {}
    if not generation_ids:
        return found
    for table in dynamodb.list_tables()["TableNames"]:
        if "generation" not in table.lower():
            continue
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                text = json.dumps(item, default=str)
                for gid in generation_ids:
                    if gid in text:
                        found.setdefault(gid, []).append(text[:3000])
    return found


def _fallback_histories(stepfunctions: Any, generation_ids: list[str]) -> dict[str, Any]:
    """Each stuck generation's fallback execution (named by the generation): its status and last events."""
    found: dict[str, Any] = {}
    for machine in stepfunctions.list_state_machines()["stateMachines"]:
        arn = machine["stateMachineArn"]
        for gid in generation_ids:
            execution = arn.replace(":stateMachine:", ":execution:") + f":{gid}"
            try:
                status = stepfunctions.describe_execution(executionArn=execution)["status"]
                events = stepfunctions.get_execution_history(executionArn=execution, reverseOrder=True)
            except stepfunctions.exceptions.ExecutionDoesNotExist:
                found[gid] = "no execution"
                continue
            tail = [{k: v for k, v in e.items() if k != "timestamp"} for e in events["events"][:8]]
            found[gid] = {"status": status, "last_events": json.dumps(tail, default=str)[:3000]}
    return found


def _dlq_contents(sqs: Any) -> dict[str, list[str]]:
    contents: dict[str, list[str]] = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        if not url.lower().endswith("dlq") and "dlq" not in url.rsplit("/", 1)[-1].lower():
            continue
        bodies: list[str] = []
        for _ in range(100):
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
            messages = batch.get("Messages", [])
            if not messages:
                break
            bodies.extend(m["Body"][:500] for m in messages)
        contents[url.rsplit("/", 1)[-1]] = bodies
    return contents
