"""Query parameters a route does not know are refused, not ignored: `?mode=` misspelt as `?mdoe=` would
otherwise return everything and look like a working filter."""

from __future__ import annotations

from collections.abc import Iterable

from aws_lambda_powertools.event_handler.api_gateway import Router

from kling_pipeline.domain.validation import invalid_input
from kling_pipeline.errors import FieldIssue


def refuse_unknown_query(router: Router, allowed: Iterable[str]) -> None:
    """Raise InvalidInput naming every query parameter of the current request not in `allowed`."""
    known = sorted(allowed)
    given = router.current_event.query_string_parameters or {}
    issues = [
        FieldIssue(name, f"unknown query parameter; this route takes {', '.join(known)}")
        for name in sorted(given)
        if name not in known
    ]
    if issues:
        raise invalid_input(issues)
