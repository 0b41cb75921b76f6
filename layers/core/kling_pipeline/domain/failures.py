"""The one sentence a tenant reads for each failure code.

A provider's own failure text can name its accounts, quotas, internal hosts or other customers' tasks, so it
is logged for the operator and never stored where a tenant reads it (GET, webhooks, events). Codes the
pipeline raises itself (`timeout`, `no_provider`, `validation_error`) carry messages we wrote, which say
what to change, and pass through unchanged.
"""

from __future__ import annotations

OWN_CODES = frozenset(
    {"timeout", "no_provider", "validation_error", "budget_exceeded", "canceled", "create_unconfirmed"}
)

FAILURE_MESSAGES: dict[str, str] = {
    "content_policy": "the provider refused the prompt or an input under its content policy",
    "bad_request": "the provider refused the request as invalid",
    "auth": "the provider rejected the pipeline's credentials",
    "account_error": "the provider account cannot run this request",
    "rate_limited": "the provider was over capacity",
    "concurrency_limited": "the provider was over capacity",
    "not_found": "the provider no longer knows this task",
    "invalid_output": "the provider's video failed verification",
    "provider_error": "the provider could not generate the video",
}


ELEMENT_FAILURE_MESSAGE = "the provider could not create the element from these images"


def public_failure_message(code: str, message: str, *, element: bool = False) -> str:
    """What a tenant reads for a failure with `code`: ours as written, a provider's replaced by the fixed
    sentence of its code (an unknown code reads like `provider_error`)."""
    if code in OWN_CODES:
        return message
    if code not in FAILURE_MESSAGES or code == "provider_error":
        return ELEMENT_FAILURE_MESSAGE if element else FAILURE_MESSAGES["provider_error"]
    return FAILURE_MESSAGES[code]
