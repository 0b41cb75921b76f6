"""`GET /playground`: one self-contained HTML page (no build step) to try the API in a browser.

The page asks for the API key and keeps it in the browser's localStorage; it calls the API from the
page itself, so this route needs no key and serves the same bytes to everyone.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

router = Router()  # type: ignore[no-untyped-call]

# Inline script and style are the page itself; API calls go to this origin, uploads to the bucket's
# presigned POST URL and videos come from presigned GETs, so connect/media/img allow other origins.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self' https: http:; img-src 'self' blob: data:; media-src https: http: blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@cache
def page() -> str:
    return resources.files("kling_pipeline.routes").joinpath("playground.html").read_text(encoding="utf-8")


@router.get("/playground", include_in_schema=False)
def get_playground() -> Response[str]:
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=page(),
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
