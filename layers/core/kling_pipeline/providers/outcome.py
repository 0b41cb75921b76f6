"""Did a failed create leave a paid task behind? The one rule that decides whether we may fail over.

*Provably not created*: the request never left (connect error), or the provider answered with a refusal —
any 4xx (401/403 auth, 402 account, 429 rate limit, 400 validation) or a refusal code in its envelope
(Kling 1302/1303, 1100-1103, 1200-1203, 1300-1301). Another provider may then be tried.

*Ambiguous*: no answer after the request was sent (read timeout, connection cut) or a server error (5xx, or
a server-error code in the envelope). A task of ours may exist: the generation stays with that provider
(docs/providers.md "Lost create answers").
"""

from __future__ import annotations

from kling_pipeline.errors import ProviderError


def maybe_created(exc: ProviderError) -> bool:
    """True unless `exc` proves the provider made no task."""
    if exc.maybe_created:
        return True
    if not exc.sent:
        return False
    status = exc.http_status
    if status is None:
        return True  # sent, and no answer came back
    if 400 <= status < 500:
        return False
    # A 2xx/3xx carrying an error envelope: a refusal code proves nothing was made; a server-error code
    # (Kling 5000-5002) does not.
    return exc.kind == "retryable" and exc.code != "account_error"
