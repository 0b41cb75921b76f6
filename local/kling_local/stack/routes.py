"""Routes of the local front door, from the functions' `Type: Api` events and their APIs' settings.

API-key rules are SAM's: a route needs `x-api-key` when its API's `Auth.ApiKeyRequired` (Globals.Api
included) is true, unless the event's own `Auth.ApiKeyRequired` says otherwise. Precedence is API
Gateway's: literal path segments beat `{param}`, which beats greedy `{proxy+}`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kling_local.stack.gateway import GatewayResponses
from kling_local.stack.intrinsics import Resolver, to_text
from kling_local.stack.lambdas import FunctionSpec
from kling_local.stack.template import IMPLICIT_API, SERVERLESS_API, Template


@dataclass(frozen=True)
class Route:
    """One `Type: Api` event: METHOD + resource path → function."""

    method: str
    resource: str
    function: str
    api: str
    stage: str
    api_key_required: bool
    binary_media_types: tuple[str, ...]
    pattern: re.Pattern[str]

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key: literal paths before parameters, greedy `{proxy+}` last (API Gateway's precedence)."""
        segments = self.resource.strip("/").split("/")
        literals = sum(1 for s in segments if not s.startswith("{"))
        return (int("+}" in self.resource), -literals, -len(segments))


def compile_path(resource: str) -> re.Pattern[str]:
    """`/v1/generations/{id}` → a regex with named groups; `{proxy+}` spans slashes."""
    parts = []
    for segment in resource.strip("/").split("/"):
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        param = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            parts.append(f"(?P<{greedy.group(1)}>.+)")
        elif param:
            parts.append(f"(?P<{param.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts) + "/?")


def api_properties(template: Template, resolver: Resolver) -> dict[str, dict[str, Any]]:
    """Resolved properties (Globals applied) of every REST API, the implicit one included."""
    apis: dict[str, dict[str, Any]] = {IMPLICIT_API: resolver.resolve(template.globals_for("Api"))}
    for resource in template.of_type(SERVERLESS_API):
        if resolver.is_active(resource):
            apis[resource.logical_id] = resolver.resolve(resource.properties)
    return apis


def gateway_responses(template: Template, resolver: Resolver) -> dict[str, GatewayResponses]:
    return {
        api: GatewayResponses(props.get("GatewayResponses"))
        for api, props in api_properties(template, resolver).items()
    }


def routes_from(template: Template, resolver: Resolver, specs: Sequence[FunctionSpec]) -> list[Route]:
    """Every Api event of every function, most specific first."""
    apis = api_properties(template, resolver)
    routes = []
    for spec in specs:
        for source in spec.events:
            if source.type != "Api":
                continue
            raw_api = source.raw_properties.get("RestApiId")
            api = str(raw_api["Ref"]) if isinstance(raw_api, dict) and "Ref" in raw_api else IMPLICIT_API
            api_props = apis.get(api, {})
            required = (api_props.get("Auth") or {}).get("ApiKeyRequired", False)
            route_auth = source.properties.get("Auth") or {}
            if "ApiKeyRequired" in route_auth:
                required = route_auth["ApiKeyRequired"]
            path = str(source.properties["Path"])
            routes.append(
                Route(
                    method=str(source.properties.get("Method", "any")).upper(),
                    resource=path,
                    function=spec.logical_id,
                    api=api,
                    stage=to_text(api_props.get("StageName", "Prod")),
                    api_key_required=to_text(required).lower() == "true",
                    binary_media_types=tuple(
                        str(m).replace("~1", "/") for m in api_props.get("BinaryMediaTypes") or []
                    ),
                    pattern=compile_path(path),
                )
            )
    return sorted(routes, key=lambda route: route.specificity)


def parse_api_keys(value: str | None) -> dict[str, str]:
    """`key=tenant,key2=tenant2` → {key: tenant} (the same format as `Settings.api_keys`)."""
    pairs = (item.split("=", 1) for item in (value or "").split(",") if "=" in item)
    return {key.strip(): tenant.strip() for key, tenant in pairs if key.strip()}
