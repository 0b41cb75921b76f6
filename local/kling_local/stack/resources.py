"""Create the template's AWS resources in moto, under the names `intrinsics` computes.

Local deviations from a deployed stack, all deliberate:
- tables are PAY_PER_REQUEST (throughput is meaningless in moto); SSE, PITR and alarms are skipped;
- `max_visibility_timeout_s` caps every queue's VisibilityTimeout so a failed message is retried in
  seconds instead of minutes (off by default; a handler that outlives the cap gets its message twice);
- EventBridge cannot invoke Lambda in moto, so each rule target that is one of our functions becomes an
  SQS target queue `<rule>-local` that a consumer delivers to the function with the unchanged EventBridge
  event, retrying like Lambda's asynchronous invocation (1 + EventInvokeConfig.MaximumRetryAttempts tries,
  default 3, one visibility timeout apart) and then sending Lambda's invocation record to the
  EventInvokeConfig OnFailure SQS destination, if any;
- Lambda functions are registered with a dummy zip so their ARNs exist; invocations go to the in-process
  handlers (`stepfunctions` shim, consumers, front door);
- secrets come from `secret_values` when given (provider credentials), else from SecretString or an
  emulated GenerateSecretString (random value, JSON template honoured).

Provisioning is repeatable against an endpoint that already holds the stack (`--aws-endpoint-url`): what
exists is reused as it is — generated secrets keep their value, so callback tokens and webhook secrets
survive a restart — and only what the local stack must refresh is updated (explicit secret values, queue
attributes, state machine definitions, functions' configuration with the current `invoke_url`).
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import string
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from kling_local.stack import stepfunctions
from kling_local.stack import template as t
from kling_local.stack.consumers import QueueMapping
from kling_local.stack.intrinsics import Resolver, to_text
from kling_local.stack.lambda_api import INVOKE_URL_VARIABLE
from kling_local.stack.lambdas import FunctionSpec
from kling_local.stack.template import Resource, Template

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

_ROLE_NAME = "kling-local-execution-role"
_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }
    ],
}
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
)


@dataclass(frozen=True)
class QueueInfo:
    logical_id: str
    name: str
    url: str
    arn: str


@dataclass
class Provisioned:
    """What exists in moto after provisioning, by logical id."""

    tables: dict[str, str] = field(default_factory=dict)
    queues: dict[str, QueueInfo] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    event_buses: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)
    mappings: list[QueueMapping] = field(default_factory=list)

    def queue_by_arn(self, arn: str) -> QueueInfo | None:
        return next((queue for queue in self.queues.values() if queue.arn == arn), None)


def _exists(error: ClientError, *codes: str) -> bool:
    """True when `error` says the resource is already there (a restart against the same endpoint)."""
    return error.response.get("Error", {}).get("Code") in codes


def _bool_text(value: Any) -> str:
    return to_text(value).lower() if isinstance(value, bool | str) else str(value)


class Provisioner:
    """Creates one template's resources in a moto server reached at `endpoint_url`."""

    def __init__(
        self,
        template: Template,
        resolver: Resolver,
        functions: Sequence[FunctionSpec],
        *,
        endpoint_url: str,
        secret_values: Mapping[str, str] | None = None,
        max_visibility_timeout_s: int | None = None,
        invoke_url: str | None = None,
    ) -> None:
        self.template = template
        self.invoke_url = invoke_url
        self.resolver = resolver
        self.functions = {spec.logical_id: spec for spec in functions}
        self.secret_values = dict(secret_values or {})
        self.max_visibility_timeout_s = max_visibility_timeout_s
        self.region = resolver.context.region
        self.account_id = resolver.context.account_id
        session = boto3.session.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto's dummy credentials
            region_name=self.region,
        )
        self._client: Any = lambda service: session.client(service, endpoint_url=endpoint_url)
        self.sqs: SQSClient = self._client("sqs")
        self.result = Provisioned()

    def provision(self) -> Provisioned:
        role_arn = self._role()
        self._secrets()
        self._tables()
        self._queues()
        self._event_buses()
        self._functions(role_arn)
        self._buckets()
        self._state_machines(role_arn)
        self._rules()
        self._sqs_event_sources()
        return self.result

    def _active(self, *types: str) -> list[Resource]:
        return [r for r in self.template.of_type(*types) if self.resolver.is_active(r)]

    def _props(self, resource: Resource) -> dict[str, Any]:
        return dict(self.resolver.resolve(resource.properties))

    # -- resources -----------------------------------------------------------------------------------

    def _role(self) -> str:
        iam = self._client("iam")
        try:
            role = iam.create_role(RoleName=_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(_TRUST_POLICY))
        except ClientError as error:
            if not _exists(error, "EntityAlreadyExists"):
                raise
            role = iam.get_role(RoleName=_ROLE_NAME)
        return str(role["Role"]["Arn"])

    def _secrets(self) -> None:
        client = self._client("secretsmanager")
        for resource in self._active(t.SECRET):
            props = self._props(resource)
            explicit = self.secret_values.get(resource.logical_id)
            value = explicit
            if value is None:
                value = props.get("SecretString") or self._generated_secret(props.get("GenerateSecretString"))
            name = self.resolver.physical_name(resource.logical_id)
            try:
                client.create_secret(Name=name, SecretString=value)
            except ClientError as error:
                if not _exists(error, "ResourceExistsException"):
                    raise
                if explicit is not None:
                    client.put_secret_value(SecretId=name, SecretString=explicit)

    @staticmethod
    def _generated_secret(spec: dict[str, Any] | None) -> str:
        """GenerateSecretString's result: a random string, inside SecretStringTemplate when it has one."""
        spec = spec or {}

        def flag(name: str) -> bool:
            return to_text(spec.get(name, False)).lower() == "true"

        alphabet = "" if flag("ExcludeLowercase") else string.ascii_lowercase
        alphabet += "" if flag("ExcludeUppercase") else string.ascii_uppercase
        alphabet += "" if flag("ExcludeNumbers") else string.digits
        alphabet += "" if flag("ExcludePunctuation") else string.punctuation
        alphabet += " " if flag("IncludeSpace") else ""
        allowed = [c for c in alphabet if c not in str(spec.get("ExcludeCharacters", ""))]
        value = "".join(secrets.choice(allowed) for _ in range(int(spec.get("PasswordLength", 32))))
        if spec.get("SecretStringTemplate") and spec.get("GenerateStringKey"):
            body = json.loads(spec["SecretStringTemplate"])
            body[spec["GenerateStringKey"]] = value
            return json.dumps(body)
        if spec:
            return value
        # No generator declared at all: give every signing key our config reads a random value.
        return json.dumps(
            {"CALLBACK_SIGNING_SECRET": value, "WEBHOOK_SIGNING_SECRET": secrets.token_urlsafe(32)}
        )

    def _tables(self) -> None:
        client = self._client("dynamodb")
        for resource in self._active(t.DYNAMODB_TABLE):
            props = self._props(resource)
            name = self.resolver.physical_name(resource.logical_id)
            request: dict[str, Any] = {
                "TableName": name,
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": "PAY_PER_REQUEST",
            }
            for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if props.get(key):
                    request[key] = [
                        {k: v for k, v in index.items() if k in ("IndexName", "KeySchema", "Projection")}
                        for index in props[key]
                    ]
            if props.get("StreamSpecification"):
                request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
            try:
                client.create_table(**request)
            except ClientError as error:
                if not _exists(error, "ResourceInUseException"):
                    raise
                self.result.tables[resource.logical_id] = name
                continue
            ttl = props.get("TimeToLiveSpecification") or {}
            if str(ttl.get("Enabled", "")).lower() == "true":
                client.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                )
            self.result.tables[resource.logical_id] = name

    def _queue_attributes(self, props: Mapping[str, Any]) -> dict[str, str]:
        attributes = {}
        for key in _QUEUE_ATTRIBUTES:
            if key in props:
                value = props[key]
                attributes[key] = json.dumps(value) if isinstance(value, dict) else _bool_text(value)
        if self.max_visibility_timeout_s is not None:
            current = int(attributes.get("VisibilityTimeout", "30"))
            attributes["VisibilityTimeout"] = str(min(current, self.max_visibility_timeout_s))
        return attributes

    def _create_queue(self, logical_id: str, name: str, attributes: dict[str, str]) -> QueueInfo:
        try:
            url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
        except ClientError as error:
            if not _exists(error, "QueueAlreadyExists", "QueueNameExists"):
                raise
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
        info = QueueInfo(logical_id, name, url, f"arn:aws:sqs:{self.region}:{self.account_id}:{name}")
        self.result.queues[logical_id] = info
        return info

    def _queues(self) -> None:
        pending = {r.logical_id: self._props(r) for r in self._active(t.SQS_QUEUE)}
        while pending:
            created = {q.arn for q in self.result.queues.values()}
            ready = [
                lid
                for lid, props in pending.items()
                if (props.get("RedrivePolicy") or {}).get("deadLetterTargetArn", "") in created | {""}
            ]
            if not ready:
                raise ValueError(f"queues whose dead-letter queue is not in the template: {sorted(pending)}")
            for logical_id in ready:
                props = pending.pop(logical_id)
                name = self.resolver.physical_name(logical_id)
                self._create_queue(logical_id, name, self._queue_attributes(props))

    def _event_buses(self) -> None:
        client = self._client("events")
        for resource in self._active(t.EVENT_BUS):
            name = self.resolver.physical_name(resource.logical_id)
            try:
                client.create_event_bus(Name=name)
            except ClientError as error:
                if not _exists(error, "ResourceAlreadyExistsException"):
                    raise
            self.result.event_buses[resource.logical_id] = name

    def _functions(self, role_arn: str) -> None:
        client = self._client("lambda")
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("README.txt", "kling-pipeline local stack: handlers run in-process")
        for spec in self.functions.values():
            variables = dict(spec.environment)
            if self.invoke_url:
                variables[INVOKE_URL_VARIABLE] = self.invoke_url
            try:
                client.create_function(
                    FunctionName=spec.name,
                    Runtime=spec.runtime,
                    Role=role_arn,
                    Handler=".".join(spec.handler.rsplit(".", 2)[-2:]),
                    Code={"ZipFile": archive.getvalue()},
                    Timeout=spec.timeout_s,
                    MemorySize=spec.memory_mb,
                    Environment={"Variables": variables},
                )
            except ClientError as error:
                if not _exists(error, "ResourceConflictException"):
                    raise
                client.update_function_configuration(
                    FunctionName=spec.name, Timeout=spec.timeout_s, Environment={"Variables": variables}
                )
            self.result.functions[spec.logical_id] = spec.arn

    def _buckets(self) -> None:
        client = self._client("s3")
        for resource in self._active(t.S3_BUCKET):
            props = self._props(resource)
            name = self.resolver.physical_name(resource.logical_id)
            try:
                if self.region == "us-east-1":
                    client.create_bucket(Bucket=name)
                else:
                    client.create_bucket(
                        Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region}
                    )
            except ClientError as error:
                if not _exists(error, "BucketAlreadyOwnedByYou"):
                    raise
            notification = self._notification(
                resource.logical_id, props.get("NotificationConfiguration") or {}
            )
            if notification:
                client.put_bucket_notification_configuration(
                    Bucket=name, NotificationConfiguration=notification
                )
            if cors := self._cors(props.get("CorsConfiguration") or {}):
                client.put_bucket_cors(Bucket=name, CORSConfiguration=cors)
            self.result.buckets[resource.logical_id] = name

    @staticmethod
    def _cors(config: Mapping[str, Any]) -> dict[str, Any]:
        """CloudFormation's `CorsConfiguration` in the S3 API's spelling."""
        names = {
            "AllowedMethods": "AllowedMethods",
            "AllowedOrigins": "AllowedOrigins",
            "AllowedHeaders": "AllowedHeaders",
            "ExposedHeaders": "ExposeHeaders",
            "MaxAge": "MaxAgeSeconds",
        }
        rules = [
            {names[key]: value for key, value in rule.items() if key in names}
            for rule in config.get("CorsRules") or []
        ]
        return {"CORSRules": rules} if rules else {}

    @staticmethod
    def _notification(logical_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """CloudFormation's NotificationConfiguration in the S3 API's shape (queues and EventBridge)."""

        def key_filter(item: Mapping[str, Any]) -> dict[str, Any]:
            rules = ((item.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
            return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}

        result: dict[str, Any] = {}
        queues = config.get("QueueConfigurations") or []
        if queues:
            result["QueueConfigurations"] = [
                {"QueueArn": q["Queue"], "Events": [q["Event"]], **key_filter(q)} for q in queues
            ]
        if (config.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled") in (True, "true"):
            result["EventBridgeConfiguration"] = {}
        for unsupported in ("LambdaConfigurations", "TopicConfigurations"):
            if config.get(unsupported):
                logger.warning("%s: %s are not emulated locally", logical_id, unsupported)
        return result

    def _state_machines(self, role_arn: str) -> None:
        client = self._client("stepfunctions")
        for resource in self._active(t.SERVERLESS_STATE_MACHINE, t.STATE_MACHINE):
            props = self._props(resource)
            body = stepfunctions.definition(resource, self.resolver, self.template.directory)
            name = self.resolver.physical_name(resource.logical_id)
            try:
                arn = client.create_state_machine(
                    name=name,
                    definition=body,
                    roleArn=role_arn,
                    type=str(props.get("Type") or props.get("StateMachineType") or "STANDARD"),
                )["stateMachineArn"]
            except ClientError as error:
                if not _exists(error, "StateMachineAlreadyExists"):
                    raise
                arn = f"arn:aws:states:{self.region}:{self.account_id}:stateMachine:{name}"
                client.update_state_machine(stateMachineArn=arn, definition=body)
            self.result.state_machines[resource.logical_id] = str(arn)

    # -- event delivery ------------------------------------------------------------------------------

    def _rules(self) -> None:
        for resource in self._active(t.EVENT_RULE):
            props = self._props(resource)
            name = self.resolver.physical_name(resource.logical_id)
            self._put_rule(resource.logical_id, name, props, props.get("Targets") or [])
        for spec in self.functions.values():
            for source in spec.events:
                if source.type in ("EventBridgeRule", "CloudWatchEvent"):
                    props = source.properties
                    rule_props = {
                        "EventBusName": props.get("EventBusName"),
                        "EventPattern": props.get("Pattern"),
                    }
                    target = {"Id": f"{spec.logical_id}{source.name}", "Arn": spec.arn}
                    if props.get("InputTransformer"):
                        target["InputTransformer"] = props["InputTransformer"]
                    name = str(props.get("RuleName") or f"{spec.name}-{source.name}")[:64]
                    self._put_rule(f"{spec.logical_id}{source.name}", name, rule_props, [target])
                elif source.type in ("Schedule", "ScheduleV2", "S3", "SNS", "DynamoDB", "Kinesis"):
                    logger.warning("%s: %s events are not emulated locally", spec.logical_id, source.type)

    def _put_rule(self, logical_id: str, name: str, props: Mapping[str, Any], targets: Sequence[Any]) -> None:
        client = self._client("events")
        bus = str(props.get("EventBusName") or "default").rsplit("event-bus/", 1)[-1]
        request: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": props.get("State", "ENABLED")}
        if props.get("EventPattern"):
            pattern = props["EventPattern"]
            request["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if props.get("ScheduleExpression"):
            request["ScheduleExpression"] = props["ScheduleExpression"]
            logger.warning("%s: schedules do not fire locally", logical_id)
        client.put_rule(**request)
        local_targets = []
        for target in targets:
            arn = str(target["Arn"])
            spec = next((s for s in self.functions.values() if s.arn == arn), None)
            if spec is not None:
                queue = self._target_queue(logical_id, name, spec)
                local = {"Id": str(target.get("Id", spec.logical_id)), "Arn": queue.arn}
                if target.get("InputTransformer"):
                    local["InputTransformer"] = target["InputTransformer"]
                local_targets.append(local)
            elif arn.startswith("arn:aws:sqs:"):
                local_targets.append(
                    {k: v for k, v in target.items() if k in ("Id", "Arn", "InputTransformer")}
                )
            else:
                logger.warning("%s: target %s is not emulated locally", logical_id, arn)
        if local_targets:
            client.put_targets(Rule=name, EventBusName=bus, Targets=local_targets)

    def _target_queue(self, rule_logical_id: str, rule_name: str, spec: FunctionSpec) -> QueueInfo:
        """The SQS queue standing in for EventBridge → Lambda (asynchronous) delivery."""
        attributes = self._queue_attributes({"VisibilityTimeout": spec.timeout_s})
        queue = self._create_queue(f"{rule_logical_id}LocalTarget", f"{rule_name[:70]}-local", attributes)
        on_failure = self.result.queue_by_arn(spec.on_failure_arn) if spec.on_failure_arn else None
        if spec.on_failure_arn and on_failure is None:
            logger.warning(
                "%s: OnFailure destination %s is not emulated", spec.logical_id, spec.on_failure_arn
            )
        self.result.mappings.append(
            QueueMapping(
                queue.url,
                queue.arn,
                spec.logical_id,
                delivery="eventbridge",
                max_attempts=1 + spec.async_retries,
                on_failure_queue_url=on_failure.url if on_failure else None,
            )
        )
        return queue

    def _sqs_event_sources(self) -> None:
        for spec in self.functions.values():
            for source in spec.events:
                if source.type != "SQS":
                    continue
                props = source.properties
                if props.get("Enabled") in (False, "false"):
                    continue
                queue = self.result.queue_by_arn(str(props["Queue"]))
                if queue is None:
                    logger.warning(
                        "%s.%s: queue %s is not in the template", spec.logical_id, source.name, props["Queue"]
                    )
                    continue
                self.result.mappings.append(
                    QueueMapping(
                        queue_url=queue.url,
                        queue_arn=queue.arn,
                        function=spec.logical_id,
                        batch_size=int(props.get("BatchSize", 10)),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in (props.get("FunctionResponseTypes") or []),
                    )
                )
