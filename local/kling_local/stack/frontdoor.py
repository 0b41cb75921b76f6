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
import logging
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from kling_local.serving import BackgroundServer
from kling_local.stack import gateway
from kling_local.stack.gateway import GatewayError, GatewayResponses
from kling_local.stack.lambdas import FunctionRegistry
from kling_local.stack.proxy import build_event, to_response
from kling_local.stack.routes import Route

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_S: Final = 29.0
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


NOOP_PATH: Final = "/_local/noop"


async def _noop(request: Request) -> Response:
    """The front door's own cost (HTTP + routing, no handler): the baseline of the load run's latencies."""
    return Response(status_code=204)


class FrontDoor:
    """The API on a socket bound at construction, so its URL is known before the stack is wired."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._http = BackgroundServer(host, port, name="front door")
        self.url = f"http://{host}:{self._http.port}"
        self._routes: list[Route] = []
        self._api_keys: dict[str, str] = {}
        self._account_id = ""
        self._gateways: dict[str, GatewayResponses] = {}
        self._busiest_api: str | None = None
        self._registry: FunctionRegistry | None = None

    def configure(
        self,
        routes: Sequence[Route],
        registry: FunctionRegistry,
        api_keys: Mapping[str, str],
        account_id: str,
        gateways: Mapping[str, GatewayResponses],
    ) -> None:
        self._routes, self._registry, self._api_keys = list(routes), registry, dict(api_keys)
        self._account_id = account_id
        self._gateways = dict(gateways)
        counts = Counter(route.api for route in self._routes)
        self._busiest_api = counts.most_common(1)[0][0] if counts else None

    def _error(self, api: str | None, error: GatewayError) -> Response:
        """API Gateway's answer for `error`; no matched route answers for the API with the most routes."""
        responses = self._gateways.get(api or self._busiest_api or "") or GatewayResponses()
        return responses.render(error, str(uuid.uuid4()))

    def start(self) -> None:
        app = Starlette(
            routes=[
                StarletteRoute(NOOP_PATH, _noop, methods=["GET"]),
                StarletteRoute("/{path:path}", self._handle, methods=_METHODS),
            ]
        )
        self._http.start(app, ws="none")

    def stop(self) -> None:
        self._http.stop()

    def _invoke(self, function: str, event: dict[str, Any]) -> Any:
        assert self._registry is not None
        # Concurrent requests run concurrently, each thread an execution environment (stack.per_thread).
        return self._registry.invoke(function, event)

    def _find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | str | None:
        """The route and its path parameters; else the API of a path matched with another method."""
        candidates = [(route, params) for route in self._routes if (params := route.match(path)) is not None]
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
            tenant = self._api_keys.get(api_key or "")
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
            account_id=self._account_id,
            api_key=api_key,
            tenant=tenant,
        )
        request_id = event["requestContext"]["requestId"]
        try:
            result = await asyncio.wait_for(
                asyncio.to_thread(self._invoke, route.function, event), INTEGRATION_TIMEOUT_S
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
