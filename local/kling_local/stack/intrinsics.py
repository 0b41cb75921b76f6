"""Resolve CloudFormation intrinsics against the local stack's deterministic physical names.

Every physical name and ARN is computed from the template alone (explicit names win, otherwise
`<stack>-<LogicalId>`), so any property can be resolved before, during or after provisioning and in any
order — no dependency graph is needed. Two local conventions, both accepted by moto:

- a secret's `Ref` is its *partial* ARN (no random suffix), which Secrets Manager accepts as a SecretId;
- a queue's `Ref` (its URL) is built on the moto endpoint, exactly as moto answers CreateQueue.

Refs to resources SAM would generate (`<Function>Role`, stages ...) resolve to placeholders with a warning:
the local stack never needs their values to work.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kling_local.stack import template as t
from kling_local.stack.template import Resource, Template

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID: Final = "123456789012"


class _NoValue:
    """`AWS::NoValue`: the property disappears."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()

# Property holding the explicit physical name, per resource type.
_NAME_PROPERTY = {
    t.DYNAMODB_TABLE: "TableName",
    "AWS::Serverless::SimpleTable": "TableName",
    t.SQS_QUEUE: "QueueName",
    t.S3_BUCKET: "BucketName",
    t.EVENT_BUS: "Name",
    t.EVENT_RULE: "Name",
    t.SECRET: "Name",
    t.SERVERLESS_FUNCTION: "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    t.SERVERLESS_STATE_MACHINE: "Name",
    t.STATE_MACHINE: "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::IAM::Role": "RoleName",
}

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class StackContext:
    """What a deployed stack would get from CloudFormation: name, region, account, parameter values."""

    stack_name: str
    region: str
    aws_endpoint_url: str
    account_id: str = DEFAULT_ACCOUNT_ID
    parameter_overrides: Mapping[str, str] = field(default_factory=dict)


def to_text(value: Any) -> str:
    """A resolved value as CloudFormation renders it into a string (env vars, Sub)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(to_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


class Resolver:
    """Evaluates intrinsic functions, conditions and pseudo parameters for one local stack."""

    def __init__(self, template: Template, context: StackContext) -> None:
        self.template = template
        self.context = context
        self._parameters = self._parameter_values()
        self._conditions: dict[str, bool] = {}

    # -- public API ----------------------------------------------------------------------------------

    def resolve(self, node: Any) -> Any:
        """`node` with every intrinsic evaluated; `AWS::NoValue` entries are dropped."""
        if isinstance(node, dict):
            if len(node) == 1:
                ((key, value),) = node.items()
                if key == "Ref":
                    return self.ref(str(self.resolve(value)))
                if key == "Condition" and isinstance(value, str):
                    return self.condition(value)
                if key.startswith("Fn::"):
                    return self._function(key, value)
            resolved = {key: self.resolve(value) for key, value in node.items()}
            return {key: value for key, value in resolved.items() if value is not NO_VALUE}
        if isinstance(node, list):
            return [item for item in (self.resolve(value) for value in node) if item is not NO_VALUE]
        return node

    def is_active(self, resource: Resource) -> bool:
        """False when the resource's Condition is false (CloudFormation would not create it)."""
        return resource.condition is None or self.condition(resource.condition)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.template.conditions:
                raise KeyError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(self.template.conditions[name]))
        return self._conditions[name]

    def physical_name(self, logical_id: str) -> str:
        resource = self._resource(logical_id)
        name_property = _NAME_PROPERTY.get(resource.type)
        explicit = resource.properties.get(name_property) if name_property else None
        if explicit is not None:
            return to_text(self.resolve(explicit))
        name = f"{self.context.stack_name}-{logical_id}"
        if resource.type == t.S3_BUCKET:
            return name.lower()[:63]
        if resource.type == t.SQS_QUEUE and self.resolve(resource.properties.get("FifoQueue", False)):
            return f"{name[:75]}.fifo"
        return name[:64]

    def arn(self, logical_id: str) -> str:
        resource = self._resource(logical_id)
        name = self.physical_name(logical_id)
        region, account = self.context.region, self.context.account_id
        arns = {
            t.DYNAMODB_TABLE: f"arn:aws:dynamodb:{region}:{account}:table/{name}",
            t.SQS_QUEUE: f"arn:aws:sqs:{region}:{account}:{name}",
            t.S3_BUCKET: f"arn:aws:s3:::{name}",
            t.EVENT_BUS: f"arn:aws:events:{region}:{account}:event-bus/{name}",
            t.EVENT_RULE: f"arn:aws:events:{region}:{account}:rule/{name}",
            t.SECRET: f"arn:aws:secretsmanager:{region}:{account}:secret:{name}",
            t.SERVERLESS_FUNCTION: f"arn:aws:lambda:{region}:{account}:function:{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{region}:{account}:function:{name}",
            t.SERVERLESS_STATE_MACHINE: f"arn:aws:states:{region}:{account}:stateMachine:{name}",
            t.STATE_MACHINE: f"arn:aws:states:{region}:{account}:stateMachine:{name}",
            "AWS::Serverless::LayerVersion": f"arn:aws:lambda:{region}:{account}:layer:{name}:1",
            "AWS::Lambda::LayerVersion": f"arn:aws:lambda:{region}:{account}:layer:{name}:1",
            "AWS::SNS::Topic": f"arn:aws:sns:{region}:{account}:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{account}:role/{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{region}:{account}:log-group:{name}:*",
        }
        return arns.get(resource.type, f"arn:aws:local:{region}:{account}:{logical_id}")

    def queue_url(self, logical_id: str) -> str:
        return f"{self.context.aws_endpoint_url}/{self.context.account_id}/{self.physical_name(logical_id)}"

    def ref(self, name: str) -> Any:
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self._parameters:
            return self._parameters[name]
        if name not in self.template.resources:
            logger.warning("Ref to %s, which the template does not declare: using a placeholder", name)
            return name
        rtype = self.template.resources[name].type
        if rtype == t.SQS_QUEUE:
            return self.queue_url(name)
        if rtype in (t.SECRET, t.SERVERLESS_STATE_MACHINE, t.STATE_MACHINE, "AWS::SNS::Topic") or (
            rtype.endswith("LayerVersion")
        ):
            return self.arn(name)
        if rtype in (t.SERVERLESS_API, "AWS::ApiGateway::RestApi"):
            return name.lower()
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.template.resources:
            logger.warning("GetAtt %s.%s: no such resource, using a placeholder", logical_id, attribute)
            return f"{logical_id}.{attribute}"
        rtype = self.template.resources[logical_id].type
        name = self.physical_name(logical_id)
        if attribute == "Arn":
            return self.arn(logical_id)
        special = {
            (t.SQS_QUEUE, "QueueName"): name,
            (t.SQS_QUEUE, "QueueUrl"): self.queue_url(logical_id) if rtype == t.SQS_QUEUE else "",
            (t.S3_BUCKET, "DomainName"): f"{name}.s3.amazonaws.com",
            (t.S3_BUCKET, "RegionalDomainName"): f"{name}.s3.{self.context.region}.amazonaws.com",
            (t.EVENT_BUS, "Name"): name,
            (t.SERVERLESS_STATE_MACHINE, "Name"): name,
            (t.STATE_MACHINE, "Name"): name,
            (t.DYNAMODB_TABLE, "StreamArn"): f"{self.arn(logical_id)}/stream/local",
            (t.SERVERLESS_API, "RootResourceId"): "root",
        }
        if (rtype, attribute) in special:
            return special[(rtype, attribute)]
        logger.warning("GetAtt %s.%s is not emulated: using a placeholder", logical_id, attribute)
        return f"{name}.{attribute}"

    # -- internals -----------------------------------------------------------------------------------

    def _resource(self, logical_id: str) -> Resource:
        try:
            return self.template.resources[logical_id]
        except KeyError:
            raise KeyError(f"template has no resource {logical_id!r}") from None

    def _parameter_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in self.template.parameters.items():
            raw = self.context.parameter_overrides.get(name, spec.get("Default"))
            if raw is None:
                logger.warning("parameter %s has no Default and no override: using an empty string", name)
                raw = ""
            kind = str(spec.get("Type", "String"))
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                values[name] = (
                    raw if isinstance(raw, list) else [item.strip() for item in str(raw).split(",")]
                )
            else:
                values[name] = to_text(raw)
        return values

    def _pseudo(self, name: str) -> Any:
        ctx = self.context
        pseudo: dict[str, Any] = {
            "AWS::Region": ctx.region,
            "AWS::AccountId": ctx.account_id,
            "AWS::StackName": ctx.stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{ctx.region}:{ctx.account_id}:stack/{ctx.stack_name}/local"
            ),
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
            "AWS::NotificationARNs": [],
        }
        return pseudo.get(name)

    def _function(self, key: str, value: Any) -> Any:
        handlers: dict[str, Callable[[Any], Any]] = {
            "Fn::Sub": self._sub,
            "Fn::GetAtt": self._get_att,
            "Fn::If": self._if,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::Equals": self._equals,
            "Fn::Not": lambda v: not self.resolve(v[0]),
            "Fn::And": lambda v: all(self.resolve(item) for item in v),
            "Fn::Or": lambda v: any(self.resolve(item) for item in v),
            "Fn::FindInMap": self._find_in_map,
            "Fn::GetAZs": lambda _v: [f"{self.context.region}{zone}" for zone in "abc"],
            "Fn::Base64": lambda v: base64.b64encode(to_text(self.resolve(v)).encode()).decode(),
            "Fn::ToJsonString": lambda v: json.dumps(self.resolve(v)),
            "Fn::Length": lambda v: len(self.resolve(v)),
        }
        if key not in handlers:
            raise NotImplementedError(f"{key} is not supported by the local stack")
        return handlers[key](value)

    def _sub(self, value: Any) -> str:
        if isinstance(value, list):
            text, variables = str(value[0]), {k: self.resolve(v) for k, v in dict(value[1]).items()}
        else:
            text, variables = str(value), {}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1).strip()
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return to_text(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return to_text(self.get_att(logical_id, attribute))
            return to_text(self.ref(expression))

        return _SUB_VARIABLE.sub(replace, text)

    def _get_att(self, value: Any) -> Any:
        logical_id, attribute = (value.split(".", 1) if isinstance(value, str) else value)[:2]
        return self.get_att(str(logical_id), to_text(self.resolve(attribute)))

    def _if(self, value: Any) -> Any:
        name, if_true, if_false = value
        return self.resolve(if_true if self.condition(str(name)) else if_false)

    def _join(self, value: Any) -> str:
        delimiter, items = value
        return str(delimiter).join(to_text(item) for item in self.resolve(items))

    def _select(self, value: Any) -> Any:
        index, items = value
        return self.resolve(items)[int(self.resolve(index))]

    def _split(self, value: Any) -> list[str]:
        delimiter, text = value
        return to_text(self.resolve(text)).split(str(delimiter))

    def _equals(self, value: Any) -> bool:
        left, right = (to_text(self.resolve(item)) for item in value)
        return left == right

    def _find_in_map(self, value: Any) -> Any:
        map_name, top, second = (to_text(self.resolve(item)) for item in value[:3])
        return self.template.mappings[map_name][top][second]
