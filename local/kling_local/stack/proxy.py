"""API Gateway REST (v1) Lambda proxy integration: the event a request becomes, the response a result becomes.

Bodies that are not UTF-8 text, or whose content type is one of the API's BinaryMediaTypes, arrive
base64-encoded with `isBase64Encoded`; results with `isBase64Encoded` are decoded. `headers` and
`queryStringParameters` keep the last of repeated values, the `multiValue*` maps keep all of them.
"""

from __future__ import annotations

import base64
import fnmatch
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kling_local.stack.routes import Route


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
