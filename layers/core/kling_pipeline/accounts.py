"""Provider accounts: which credentials a provider has, and how many tasks each may run at once.

`KLING_ACCOUNTS`, `EVOLINK_ACCOUNTS` and `KLING3API_ACCOUNTS` are JSON lists (in AWS, values of the
provider secret), one object per account:

    KLING_ACCOUNTS     [{"name": "a", "access_key": "…", "secret_key": "…", "concurrency": 5}, …]
    EVOLINK_ACCOUNTS   [{"name": "a", "api_key": "…", "concurrency": 5}, …]
    KLING3API_ACCOUNTS [{"name": "a", "api_key": "…", "concurrency": 5}, …]

The single variables of the first wave (`KLING_ACCESS_KEY` + `KLING_SECRET_KEY`, `EVOLINK_API_KEY`,
`KLING3API_API_KEY`) stay as a shorthand for one account named `default` with
`DEFAULT_ACCOUNT_CONCURRENCY` (5) slots; when a provider's list is set, the list wins. Names are what
tasks record ("the account it ran on"), so renaming an account strands its in-flight tasks: add and
retire accounts, do not rename them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_ACCOUNT = "default"
DEFAULT_CONCURRENCY = 5

AccountName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Concurrency = Annotated[int, Field(ge=1, le=1000)]


class KlingAccount(BaseModel):
    """An official Kling key pair (JWT issuer and HMAC key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: AccountName
    access_key: SecretStr
    secret_key: SecretStr
    concurrency: Concurrency = DEFAULT_CONCURRENCY


class KeyAccount(BaseModel):
    """A gateway account (EvoLink, kling3api): one static API key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: AccountName
    api_key: SecretStr
    concurrency: Concurrency = DEFAULT_CONCURRENCY


def json_list(value: Any) -> Any:
    """A JSON string (as a secret or a hand-written environment holds it) → its value; an empty list
    (the template's placeholder) → None, so the single-key shorthand still applies."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else None
    return None if value == [] else value


def unique_names(accounts: list[Any] | None) -> list[Any] | None:
    """The list unchanged, or ValueError naming the repeated account names."""
    names = [account.name for account in accounts or []]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"account names must be unique within a provider; repeated: {', '.join(repeated)}")
    return accounts
