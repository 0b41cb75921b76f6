"""API Gateway's own error responses (bad key, unknown route, too large, Lambda failure), as configured.

An API's `GatewayResponses` (SAM shape: `StatusCode`, `ResponseTemplates`, `ResponseParameters.Headers`)
replace the built-in `{"message": ...}` bodies, so the local front door answers with the same error
bodies as the deployed API. Lookup order is API Gateway's: the specific response type, then
DEFAULT_4XX / DEFAULT_5XX, then the built-in default. Templates support `$context.error.message`,
`$context.error.messageString`, `$context.error.responseType` and `$context.requestId`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from starlette.responses import Response


@dataclass(frozen=True)
class GatewayError:
    response_type: str
    status: int
    message: str


INVALID_API_KEY: Final = GatewayError("INVALID_API_KEY", 403, "Forbidden")
# API Gateway answers an unknown route with 403; locally 404 unless the template says otherwise.
MISSING_AUTHENTICATION_TOKEN: Final = GatewayError("MISSING_AUTHENTICATION_TOKEN", 404, "Not Found")
REQUEST_TOO_LARGE: Final = GatewayError("REQUEST_TOO_LARGE", 413, "Request Too Long")
LAMBDA_ERROR: Final = GatewayError("DEFAULT_5XX", 502, "Internal server error")
INTEGRATION_TIMEOUT: Final = GatewayError("INTEGRATION_TIMEOUT", 504, "Endpoint request timed out")


class GatewayResponses:
    """One API's configured gateway responses."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config or {})

    def render(self, error: GatewayError, request_id: str) -> Response:
        family = "DEFAULT_4XX" if error.status < 500 else "DEFAULT_5XX"
        spec: Mapping[str, Any] = self.config.get(error.response_type) or self.config.get(family) or {}
        status = int(spec.get("StatusCode") or error.status)
        template = (spec.get("ResponseTemplates") or {}).get("application/json")
        if template:
            body = (
                str(template)
                .replace("$context.error.messageString", json.dumps(error.message))
                .replace("$context.error.message", error.message)
                .replace("$context.error.responseType", error.response_type)
                .replace("$context.requestId", request_id)
            )
        else:
            body = json.dumps({"message": error.message})
        headers = {"content-type": "application/json", "x-amzn-requestid": request_id}
        for name, value in ((spec.get("ResponseParameters") or {}).get("Headers") or {}).items():
            headers[str(name).lower()] = str(value).strip("'")
        return Response(content=body, status_code=status, headers=headers)
