"""What the S3 and EventBridge triggers share: run each job once, and the stack's job-spec defaults.

Exactly one generation per trigger job (an uploaded object version, a job-file line, an event id).

S3 notifications and EventBridge events arrive at least once, and an upload can be reached from three
directions (its own notification, its sidecar's, a grace-period re-check), so every trigger funnels its
job through `run_claimed`. The job is claimed with a conditional put of a claim item in the generations table
(`pk = "<KIND>#<sha256 of the job key>"`, `sk = "CLAIM"`, no index attributes, TTL after 90 days):

- first claimant: creates the generation, then records its id (or the rejection) on the claim;
- later arrivals: a finished claim answers with the recorded outcome and creates nothing; a claim still
  running under its lease raises `JobInProgress` (the message is retried later and then sees the outcome);
- a claim whose lease ran out belongs to an attempt that died or raised. It may have written its generation
  before failing, so the tenant's generations since the claim are searched for the job's generation first
  (`matches`); only when there is none is the claim taken over and the job run again.

Why not Powertools idempotency here: it deletes its record when the function raises, and `create_generation`
can raise after the generation is written (a failed safety-net send, a throttled start of the fallback);
the retry would then create a second generation. The claim stays put instead, and the retry adopts the
written generation. Rejections (validation, no provider) happen before anything is written, so their
claim is finished as `rejected` and answers every later duplicate with the same error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.domain.request import MAX_DURATION_WITH_VIDEO
from kling_pipeline.errors import BudgetExceeded, InvalidInput, NoProviderAvailable, PipelineError
from kling_pipeline.observability import logger, metrics
from kling_pipeline.store.documents import is_condition_failure
from kling_pipeline.store.generations import get_generation_store

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

CLAIM_SK = "CLAIM"
# Longer than one create (validate, quote, submit with failover); a dead attempt's job is recovered after.
CLAIM_LEASE = timedelta(seconds=120)
# After a create raised: time for the generation index to show a generation it may have written.
RECOVERY_DELAY = timedelta(seconds=15)
CLAIM_TTL = timedelta(days=90)
# Generations written by a failed attempt are at most this much older than its claim's timestamp.
CLOCK_MARGIN = timedelta(seconds=60)
_RECOVERY_PAGE = 100
_RECOVERY_MAX_PAGES = 50

# Rejections raised before anything is written or submitted: final for the job, never retried.
REJECTIONS: tuple[type[PipelineError], ...] = (InvalidInput, NoProviderAvailable, BudgetExceeded)


class JobInProgress(Exception):
    """Another attempt holds the job's claim; retry later to learn its outcome."""


@dataclass(frozen=True)
class JobOutcome:
    """What a job produced: a generation id or an error body (`{"code", "message", "details"}`)."""

    generation_id: str | None = None
    error: dict[str, Any] | None = None
    generation: Generation | None = None  # only when this attempt created it
    replayed: bool = False  # the outcome of an earlier attempt (a duplicate delivery)


def error_details(exc: PipelineError) -> dict[str, Any]:
    """The `error` member of DESIGN.md §4's error body, for files and events."""
    details = getattr(exc, "details", None) or []
    if isinstance(details, dict):  # budget_exceeded: the figures, as in the API's 402 body
        return {"code": exc.code, "message": exc.message, "details": details}
    return {
        "code": exc.code,
        "message": exc.message,
        "details": [{"field": issue.field, "issue": issue.issue} for issue in details],
    }


@dataclass(frozen=True)
class Claim:
    pk: str
    state: str  # running | done
    claimed_at: datetime
    lease_until: datetime
    generation_id: str | None
    error: dict[str, Any] | None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Claim:
        error = item.get("error")
        return cls(
            pk=str(item["pk"]),
            state=str(item["state"]),
            claimed_at=datetime.fromisoformat(str(item["claimed_at"])),
            lease_until=datetime.fromisoformat(str(item["lease_until"])),
            generation_id=str(item["generation_id"]) if item.get("generation_id") else None,
            error=json.loads(str(error)) if error else None,
        )

    def outcome(self) -> JobOutcome:
        return JobOutcome(generation_id=self.generation_id, error=self.error, replayed=True)


class ClaimStore:
    """Claim items beside the generations (same table, their own partition per job)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def acquire(self, pk: str, *, job: str, tenant_id: str, now: datetime) -> Claim | None:
        """Claim `pk` for this attempt; None when claimed, else the claim someone else holds."""
        try:
            self._table.put_item(
                Item={
                    "pk": pk,
                    "sk": CLAIM_SK,
                    "job": job[:2048],
                    "tenant_id": tenant_id,
                    "state": "running",
                    "claimed_at": now.isoformat(),
                    "lease_until": (now + CLAIM_LEASE).isoformat(),
                    "attempts": 1,
                    "expires_at": int((now + CLAIM_TTL).timestamp()),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
            return None
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
        item = self._table.get_item(Key={"pk": pk, "sk": CLAIM_SK}, ConsistentRead=True).get("Item")
        if item is None:  # released in between: try once more
            return self.acquire(pk, job=job, tenant_id=tenant_id, now=now)
        return Claim.from_item(item)

    def take_over(self, claim: Claim, *, now: datetime) -> bool:
        """Renew an expired lease for this attempt; False when another attempt renewed it first."""
        try:
            self._table.update_item(
                Key={"pk": claim.pk, "sk": CLAIM_SK},
                UpdateExpression="SET lease_until = :lease, attempts = attempts + :one",
                ConditionExpression="#state = :running AND lease_until = :seen",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":lease": (now + CLAIM_LEASE).isoformat(),
                    ":one": 1,
                    ":running": "running",
                    ":seen": claim.lease_until.isoformat(),
                },
            )
            return True
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise

    def finish(
        self, pk: str, *, generation_id: str | None = None, error: dict[str, Any] | None = None
    ) -> None:
        values: dict[str, Any] = {":done": "done", ":at": utcnow().isoformat()}
        expression = "SET #state = :done, finished_at = :at"
        if generation_id:
            expression += ", generation_id = :gid"
            values[":gid"] = generation_id
        if error:
            expression += ", #error = :error"
            values[":error"] = json.dumps(error)
        self._table.update_item(
            Key={"pk": pk, "sk": CLAIM_SK},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#state": "state", **({"#error": "error"} if error else {})},
            ExpressionAttributeValues=values,
        )

    def hold_for_recovery(self, pk: str, *, now: datetime) -> None:
        """After a failed create: let a retry look for the generation soon instead of after the full lease."""
        self._table.update_item(
            Key={"pk": pk, "sk": CLAIM_SK},
            UpdateExpression="SET lease_until = :lease",
            ConditionExpression="#state = :running",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":lease": (now + RECOVERY_DELAY).isoformat(), ":running": "running"},
        )

    def release(self, pk: str) -> None:
        """Forget a claim whose attempt wrote nothing (its job may run again from scratch)."""
        self._table.delete_item(Key={"pk": pk, "sk": CLAIM_SK})


def claim_key(kind: str, job: str) -> str:
    return f"{kind}#{hashlib.sha256(job.encode()).hexdigest()}"


def run_claimed(
    kind: str,
    job: str,
    *,
    tenant_id: str,
    create: Callable[[], Generation],
    matches: Callable[[Generation], bool],
    on_rejected: Callable[[dict[str, Any]], None] | None = None,
) -> JobOutcome:
    """Run `create` at most once per (`kind`, `job`), whoever else delivers the same job.

    `matches` recognises the job's generation among the tenant's (its `source`/`metadata`) when an
    earlier attempt failed after writing it. `on_rejected` runs before a rejection is recorded, so a
    failure there (an error file, an event) releases the claim and the whole job is retried.
    """
    claims = get_claim_store()
    pk = claim_key(kind, job)
    now = utcnow()
    held = claims.acquire(pk, job=job, tenant_id=tenant_id, now=now)
    if held is not None:
        if held.state == "done":
            logger.info("duplicate trigger: job already handled", extra={"job": job})
            metrics.add_metric(name="TriggerDuplicate", unit=MetricUnit.Count, value=1)
            return held.outcome()
        if held.lease_until > now:
            raise JobInProgress(f"job {job} is being handled by another attempt")
        adopted = _find_generation(tenant_id, since=held.claimed_at - CLOCK_MARGIN, matches=matches)
        if adopted is not None:
            logger.info("adopting the generation of a failed attempt", extra={"generation_id": adopted.id})
            claims.finish(pk, generation_id=adopted.id)
            return JobOutcome(generation_id=adopted.id, replayed=True)
        if not claims.take_over(held, now=now):
            raise JobInProgress(f"job {job} was taken over by another attempt")
    try:
        generation = create()
    except REJECTIONS as exc:
        error = error_details(exc)
        try:
            if on_rejected is not None:
                on_rejected(error)
        except Exception:
            claims.release(pk)
            raise
        claims.finish(pk, error=error)
        metrics.add_metric(name="TriggerRejected", unit=MetricUnit.Count, value=1)
        return JobOutcome(error=error)
    except Exception:
        try:
            claims.hold_for_recovery(pk, now=utcnow())
        except ClientError:
            logger.warning("could not shorten the claim's lease", exc_info=True)
        raise
    claims.finish(pk, generation_id=generation.id)
    return JobOutcome(generation_id=generation.id, generation=generation)


def _find_generation(
    tenant_id: str, *, since: datetime, matches: Callable[[Generation], bool]
) -> Generation | None:
    """The tenant's generation created since `since` that `matches`, newest first."""
    store = get_generation_store()
    cursor: str | None = None
    for _ in range(_RECOVERY_MAX_PAGES):
        page = store.list_for_tenant(tenant_id, status=None, limit=_RECOVERY_PAGE, cursor=cursor)
        for generation in page.items:
            if generation.created_at < since:
                return None
            if matches(generation):
                return generation
        if not page.next_cursor:
            return None
        cursor = page.next_cursor
    return None


def get_claim_store() -> ClaimStore:
    from kling_pipeline import aws

    return ClaimStore(aws.generations_table())  # the table is cached by `aws`; reset with its clients


def with_trigger_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """Fill what a trigger's job spec left out from the stack parameters (`DEFAULT_QUALITY`,
    `DEFAULT_DURATION_S`); video-edit has no duration, and a video input caps the default at 10 s."""
    settings = get_settings()
    filled = dict(body)
    filled.setdefault("quality", settings.default_quality)
    if filled.get("mode") != "video-edit" and "duration" not in filled and not filled.get("shots"):
        duration = settings.default_duration_s
        filled["duration"] = min(duration, MAX_DURATION_WITH_VIDEO) if filled.get("video") else duration
    return filled
