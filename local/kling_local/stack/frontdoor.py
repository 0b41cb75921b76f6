"""The HTTP front door: requests → API Gateway REST (v1) proxy events → in-process handlers.

Routes come from the functions' `Type: Api` events. API Gateway behaviour kept locally:
- API keys: a route needs `x-api-key` when its API's `Auth.ApiKeyRequired` is true, unless the route's own
  `Auth.ApiKeyRequired` says otherwise; a missing or unknown key is `403 {"message": "Forbidden"}`. The
  key's tenant becomes `requestContext.identity.apiKeyId` (in AWS each tenant has its own key, whose id
  our code reads as the tenant);
- payloads over 10 MB are `413`, a handler exception or malformed result is `502 {"message": "Internal
  server error"}`, a handler still running after 29 s is `504`; the API's `GatewayResponses` replace
  these bodies and statuses as they do in AWS (`gateway`);
- bodies that are not UTF-8 text, or whose content type is one of the API's BinaryMediaTypes, arrive
  base64-encoded with `isBase64Encoded`; responses with `isBase64Encoded` are decoded.
Differences: all APIs share one host and port (paths must not collide); there is no stage prefix in the
URL (the event's `requestContext.stage` and `.path` still carry it); header names arrive lowercased;
an unknown route is `404 {"message": "Not Found"}` (API Gateway answers 403 "Missing Authentication Token")
unless the template configures MISSING_AUTHENTICATION_TOKEN; it is answered for the API with most routes.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from kling_local.stack import gateway
from kling_local.stack.gateway import GatewayError, GatewayResponses
from kling_local.stack.intrinsics import Resolver, to_text
from kling_local.stack.lambdas import FunctionRegistry, FunctionSpec
from kling_local.stack.template import IMPLICIT_API, SERVERLESS_API, Template

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_S: Final = 29.0
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


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


def _is_binary(content_type: str, body: bytes, binary_media_types: Sequence[str]) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and any(fnmatch.fnmatch(media_type, pattern.lower()) for pattern in binary_media_types):
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def build_event(
    request: Request,
    route: Route,
    path_parameters: Mapping[str, str],
    body: bytes,
    *,
    account_id: str,
    api_key: str | None,
    tenant: str | None,
) -> dict[str, Any]:
    """The API Gateway REST proxy (v1) event for one request."""
    client_ip = request.client.host if request.client else "127.0.0.1"
    raw_headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
    raw_headers += [("x-forwarded-for", client_ip), ("x-forwarded-proto", request.url.scheme)]
    raw_headers.append(("x-forwarded-port", str(request.url.port or 80)))
    multi_headers: dict[str, list[str]] = {}
    for name, value in raw_headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        multi_query.setdefault(name, []).append(value)
    now = datetime.now(UTC)
    binary = bool(body) and _is_binary(
        request.headers.get("content-type", ""), body, route.binary_media_types
    )
    text_body = base64.b64encode(body).decode() if binary else body.decode("utf-8")
    return {
        "resource": route.resource,
        "path": request.url.path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": account_id,
            "apiId": route.api.lower(),
            "resourceId": uuid.uuid4().hex[:6],
            "resourcePath": route.resource,
            "httpMethod": request.method,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "path": f"/{route.stage}{request.url.path}",
            "protocol": f"HTTP/{request.scope.get('http_version', '1.1')}",
            "stage": route.stage,
            "domainName": request.headers.get("host", ""),
            "domainPrefix": request.headers.get("host", "").split(".", 1)[0],
            "identity": {
                "sourceIp": client_ip,
                "userAgent": request.headers.get("user-agent"),
                "apiKey": api_key,
                "apiKeyId": tenant,
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "user": None,
                "userArn": None,
                "clientCert": None,
            },
        },
        "body": text_body if body else None,
        "isBase64Encoded": binary,
    }


def to_response(result: Any, request_id: str) -> Response:
    """A Lambda proxy result as the HTTP response; ValueError when API Gateway would call it malformed."""
    if not isinstance(result, dict) or "statusCode" not in result:
        raise ValueError("Lambda proxy response has no statusCode")
    body = result.get("body")
    if result.get("isBase64Encoded"):
        content = base64.b64decode(body or "")
    else:
        content = ("" if body is None else str(body)).encode("utf-8")
    multi = {
        k.lower(): [str(v) for v in values] for k, values in (result.get("multiValueHeaders") or {}).items()
    }
    headers = [
        (k.lower(), str(v)) for k, v in (result.get("headers") or {}).items() if k.lower() not in multi
    ]
    headers += [(name, value) for name, values in multi.items() for value in values]
    names = {name for name, _ in headers}
    headers += [("content-length", str(len(content)))] if "content-length" not in names else []
    headers += [("content-type", "application/json")] if "content-type" not in names else []
    headers.append(("x-amzn-requestid", request_id))
    response = Response(content=content, status_code=int(result["statusCode"]))
    response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return response


class FrontDoor:
    """A uvicorn server on a socket bound at construction, so its URL is known before the stack is wired."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.routes: list[Route] = []
        self.api_keys: dict[str, str] = {}
        self.account_id = "123456789012"
        self.gateways: dict[str, GatewayResponses] = {}
        self._registry: FunctionRegistry | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def configure(
        self,
        routes: Sequence[Route],
        registry: FunctionRegistry,
        api_keys: Mapping[str, str],
        account_id: str,
        gateways: Mapping[str, GatewayResponses] | None = None,
    ) -> None:
        self.routes, self._registry, self.api_keys = list(routes), registry, dict(api_keys)
        self.account_id = account_id
        self.gateways = dict(gateways or {})

    def _error(self, api: str | None, error: GatewayError) -> Response:
        if api is None:  # no route matched: answer for the API with the most routes
            counts: dict[str, int] = {}
            for route in self.routes:
                counts[route.api] = counts.get(route.api, 0) + 1
            api = max(counts, key=lambda name: counts[name]) if counts else None
        responses = self.gateways.get(api or "") or GatewayResponses()
        return responses.render(error, str(uuid.uuid4()))

    def start(self, timeout_s: float = 10.0) -> None:
        app = Starlette(routes=[StarletteRoute("/{path:path}", self._handle, methods=_METHODS)])
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off", ws="none"
        )
        self._server = uvicorn.Server(config)
        self._socket.listen(1024)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="front-door", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the front door did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._socket.close()

    def _find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | str | None:
        """The route and its path parameters; else the API of a path matched with another method."""
        candidates = [(route, params) for route in self.routes if (params := route.match(path)) is not None]
        for wanted in (method, "ANY"):
            for route, params in candidates:
                if route.method == wanted:
                    return route, params
        return candidates[0][0].api if candidates else None

    async def _handle(self, request: Request) -> Response:
        found = self._find(request.method, request.url.path)
        if not isinstance(found, tuple) or self._registry is None:
            api = found if isinstance(found, str) else None
            return self._error(api, gateway.MISSING_AUTHENTICATION_TOKEN)
        route, params = found
        api_key = tenant = None
        if route.api_key_required:
            api_key = request.headers.get("x-api-key")
            tenant = self.api_keys.get(api_key or "")
            if tenant is None:
                return self._error(route.api, gateway.INVALID_API_KEY)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
            return self._error(route.api, gateway.REQUEST_TOO_LARGE)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_PAYLOAD_BYTES:
                return self._error(route.api, gateway.REQUEST_TOO_LARGE)
            chunks.append(chunk)
        event = build_event(
            request,
            route,
            params,
            b"".join(chunks),
            account_id=self.account_id,
            api_key=api_key,
            tenant=tenant,
        )
        request_id = event["requestContext"]["requestId"]
        try:
            result = await asyncio.wait_for(
                asyncio.to_thread(self._registry.invoke, route.function, event), INTEGRATION_TIMEOUT_S
            )
        except TimeoutError:
            logger.error("%s %s: %s timed out", request.method, request.url.path, route.function)
            return self._error(route.api, gateway.INTEGRATION_TIMEOUT)
        except Exception:
            logger.exception("%s %s: %s raised", request.method, request.url.path, route.function)
            return self._error(route.api, gateway.LAMBDA_ERROR)
        try:
            return to_response(result, request_id)
        except (ValueError, TypeError):
            logger.exception("%s returned a malformed proxy response", route.function)
            return self._error(route.api, gateway.LAMBDA_ERROR)
