"""Provider accounts: the `*_ACCOUNTS` lists, the single-key shorthand, and one adapter per account
holding that account's own credentials."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from pydantic import ValidationError

from kling_pipeline.config import Settings
from kling_pipeline.providers import registry
from kling_pipeline.providers.base import ProviderName as P

EVO = "https://evolink.test"


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KLING_ACCESS_KEY",
        "KLING_SECRET_KEY",
        "EVOLINK_API_KEY",
        "KLING3API_API_KEY",
        "KLING_ACCOUNTS",
        "EVOLINK_ACCOUNTS",
        "KLING3API_ACCOUNTS",
        "DEFAULT_ACCOUNT_CONCURRENCY",
        "PROVIDER_SECRET_NAME",
    ):
        monkeypatch.delenv(name, raising=False)


def test_single_keys_are_one_default_account_with_the_documented_concurrency() -> None:
    settings = Settings(evolink_api_key="e", kling_access_key="ak", kling_secret_key="sk")
    accounts = registry.configured_accounts(settings, httpx.Client())
    assert [(a.provider, a.name, a.concurrency) for group in accounts.values() for a in group] == [
        (P.KLING, "default", 5),
        (P.EVOLINK, "default", 5),
    ]
    tuned = Settings(evolink_api_key="e", default_account_concurrency=2)
    assert registry.configured_accounts(tuned, httpx.Client())[P.EVOLINK][0].concurrency == 2


def test_account_lists_come_from_the_environment_as_json_and_win_over_single_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVOLINK_API_KEY", "single")
    monkeypatch.setenv(
        "EVOLINK_ACCOUNTS",
        json.dumps([{"name": "a", "api_key": "ka", "concurrency": 3}, {"name": "b", "api_key": "kb"}]),
    )
    accounts = registry.configured_accounts(Settings(), httpx.Client())[P.EVOLINK]
    assert [(a.name, a.concurrency) for a in accounts] == [("a", 3), ("b", 5)]


def test_a_secret_holds_the_list_as_json_or_as_a_string_and_empty_lists_are_placeholders() -> None:
    as_list = Settings(kling3api_accounts=[{"name": "x", "api_key": "k", "concurrency": 1}])
    as_text = Settings(kling3api_accounts='[{"name": "x", "api_key": "k", "concurrency": 1}]')
    assert as_list.kling3api_accounts == as_text.kling3api_accounts
    placeholder = Settings(kling3api_accounts=[], kling3api_api_key="single")
    assert [a.name for a in registry.configured_accounts(placeholder, httpx.Client())[P.KLING3API]] == [
        "default"
    ]


@pytest.mark.parametrize(
    ("accounts", "problem"),
    [
        ([{"name": "a", "api_key": "1"}, {"name": "a", "api_key": "2"}], "repeated: a"),
        ([{"name": "a", "api_key": "1", "concurrency": 0}], "greater than or equal to 1"),
        ([{"name": "bad name", "api_key": "1"}], "pattern"),
        ([{"name": "a"}], "api_key"),
        ([{"name": "a", "api_key": "1", "secret_key": "2"}], "Extra inputs"),
    ],
)
def test_bad_account_lists_are_refused_with_the_reason(
    accounts: list[dict[str, object]], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(evolink_accounts=accounts)


def test_account_secrets_never_show_in_settings_reprs() -> None:
    settings = Settings(kling_accounts=[{"name": "a", "access_key": "AK-SECRET", "secret_key": "SK-SECRET"}])
    assert "SECRET" not in repr(settings)


def test_each_account_adapter_calls_with_its_own_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLINK_API_BASE_URL", EVO)
    monkeypatch.setenv(
        "EVOLINK_ACCOUNTS", json.dumps([{"name": "a", "api_key": "key-a"}, {"name": "b", "api_key": "key-b"}])
    )
    from kling_pipeline.caches import reset_caches

    reset_caches()
    try:
        with respx.mock() as mock:
            route = mock.get(f"{EVO}/v1/tasks/t1").respond(
                200, json={"id": "t1", "status": "processing", "progress": 10}
            )
            registry.account_adapter(P.EVOLINK, "b").query("t1")
            registry.account_adapter(P.EVOLINK, None).query("t1")  # recorded before accounts: the first
        assert [call.request.headers["authorization"] for call in route.calls] == [
            "Bearer key-b",
            "Bearer key-a",
        ]
        assert registry.get_providers()[P.EVOLINK] is registry.account_adapter(P.EVOLINK, "a")
        with pytest.raises(LookupError, match="account c is not configured"):
            registry.account_adapter(P.EVOLINK, "c")
    finally:
        reset_caches()
