"""Load a SAM template (the subset this project uses) and apply its Globals.

The local stack reads the very `template.yaml` that is deployed, so local and deployed wiring cannot drift.
Short-form tags (`!Ref`, `!Sub`, `!GetAtt` ...) are turned into their long forms at load time, so the
resolver (`intrinsics`) only ever sees one shape. Globals are merged the way SAM merges them: maps merge
key by key, lists are additive, scalars on the resource win.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_API = "AWS::Serverless::Api"
SERVERLESS_STATE_MACHINE = "AWS::Serverless::StateMachine"
STATE_MACHINE = "AWS::StepFunctions::StateMachine"
DYNAMODB_TABLE = "AWS::DynamoDB::Table"
SQS_QUEUE = "AWS::SQS::Queue"
S3_BUCKET = "AWS::S3::Bucket"
EVENT_BUS = "AWS::Events::EventBus"
EVENT_RULE = "AWS::Events::Rule"
SECRET = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type

# The API SAM creates for `Type: Api` events that name no RestApiId.
IMPLICIT_API = "ServerlessRestApi"

# Globals section → the resource type it applies to.
_GLOBALS_TARGETS = {
    "Function": SERVERLESS_FUNCTION,
    "Api": SERVERLESS_API,
    "StateMachine": SERVERLESS_STATE_MACHINE,
    "SimpleTable": "AWS::Serverless::SimpleTable",
}


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic tags."""


def _construct_intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


def _construct_plain_scalar(loader: _CfnLoader, node: yaml.Node) -> Any:
    # A policy's `Version: 2012-10-17` must stay a string, as CloudFormation reads it.
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)  # type: ignore[no-untyped-call]
_CfnLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_plain_scalar)


def load_yaml(text: str) -> Any:
    """Parse CloudFormation YAML (or JSON, a YAML subset) with intrinsic tags in long form."""
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals merge: maps merge recursively, lists are additive, the resource's scalars win."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


@dataclass(frozen=True)
class Resource:
    """One template resource with Globals applied; properties are still unresolved."""

    logical_id: str
    type: str
    properties: dict[str, Any]
    condition: str | None = None


class Template:
    """A parsed SAM template and the directory its relative paths (CodeUri, DefinitionUri) start from."""

    def __init__(self, body: dict[str, Any], directory: Path) -> None:
        self.body = body
        self.directory = directory
        self.resources = self._build_resources()

    @classmethod
    def load(cls, path: str | Path) -> Template:
        path = Path(path).resolve()
        body = load_yaml(path.read_text(encoding="utf-8"))
        if not isinstance(body, dict) or not isinstance(body.get("Resources"), dict):
            raise ValueError(f"{path} is not a CloudFormation template (no Resources)")
        return cls(body, path.parent)

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return dict(self.body.get("Parameters") or {})

    @property
    def conditions(self) -> dict[str, Any]:
        return dict(self.body.get("Conditions") or {})

    @property
    def mappings(self) -> dict[str, Any]:
        return dict(self.body.get("Mappings") or {})

    def globals_for(self, section: str) -> dict[str, Any]:
        return dict((self.body.get("Globals") or {}).get(section) or {})

    def of_type(self, *types: str) -> list[Resource]:
        return [resource for resource in self.resources.values() if resource.type in types]

    def _build_resources(self) -> dict[str, Resource]:
        targets = {rtype: self.globals_for(section) for section, rtype in _GLOBALS_TARGETS.items()}
        resources: dict[str, Resource] = {}
        for logical_id, raw in self.body["Resources"].items():
            rtype = str(raw.get("Type", ""))
            properties = dict(raw.get("Properties") or {})
            if targets.get(rtype):
                properties = merge_globals(targets[rtype], properties)
            resources[logical_id] = Resource(logical_id, rtype, properties, raw.get("Condition"))
        return resources
