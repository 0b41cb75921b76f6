"""Settings from Secrets Manager (issue 11, items 7 and 8): each secret may set only its own keys, local-only
switches are refused inside Lambda, and a rotated secret is picked up once the cache's age has passed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from kling_pipeline import config
from kling_pipeline.caches import reset_caches
from kling_pipeline.config import get_settings
from kling_pipeline.providers.registry import get_providers


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PROVIDER_SECRET_NAME": "providers",
        "SIGNING_SECRET_NAME": "signing",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "KLING_ACCESS_KEY", "EVOLINK_API_KEY", "LOCAL_ALLOW_HTTP_LOOPBACK"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        client = boto3.client("secretsmanager")
        client.create_secret(Name="providers", SecretString=json.dumps({"EVOLINK_API_KEY": "ev-1"}))
        client.create_secret(Name="signing", SecretString=json.dumps({"CALLBACK_SIGNING_SECRET": "cb-1"}))
        reset_caches()
        yield client
        reset_caches()


def _put(client: object, name: str, value: dict[str, str]) -> None:
    client.put_secret_value(SecretId=name, SecretString=json.dumps(value))  # type: ignore[attr-defined]


def test_a_secret_sets_only_the_keys_it_is_for(secrets: object) -> None:
    # Given a provider secret that also tries to flip local-only switches and another secret's key
    _put(
        secrets,
        "providers",
        {
            "EVOLINK_API_KEY": "ev-1",
            "LOCAL_ALLOW_PRIVATE_WEBHOOKS": "true",
            "LOCAL_ALLOW_HTTP_LOOPBACK": "true",
            "CALLBACK_SIGNING_SECRET": "attacker-chosen",
            "EVOLINK_API_BASE_URL": "https://evil.example",
        },
    )

    settings = get_settings()

    assert settings.evolink_api_key is not None and settings.evolink_api_key.get_secret_value() == "ev-1"
    assert settings.local_allow_private_webhooks is False
    assert settings.local_allow_http_loopback is False
    assert settings.callback_signing_secret is not None
    assert settings.callback_signing_secret.get_secret_value() == "cb-1"
    assert settings.evolink_api_base_url == "https://api.evolink.ai"


def test_local_switches_are_refused_inside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "kling-pipeline-api")
    monkeypatch.setenv("LOCAL_ALLOW_PRIVATE_WEBHOOKS", "1")
    reset_caches()
    try:
        with pytest.raises(RuntimeError, match="LOCAL_ALLOW_PRIVATE_WEBHOOKS"):
            get_settings()
    finally:
        monkeypatch.delenv("LOCAL_ALLOW_PRIVATE_WEBHOOKS")
        reset_caches()


def test_a_rotated_secret_is_used_once_the_cache_age_has_passed(
    secrets: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(config, "_monotonic", lambda: clock[0])
    assert get_settings().callback_signing_secret.get_secret_value() == "cb-1"  # type: ignore[union-attr]
    evolink = get_providers()
    _put(secrets, "signing", {"CALLBACK_SIGNING_SECRET": "cb-2"})
    _put(secrets, "providers", {"EVOLINK_API_KEY": "ev-2"})

    # Within the cache's age: the old values (no Secrets Manager call per request)
    clock[0] += config.SECRET_MAX_AGE_S - 1
    assert get_settings().callback_signing_secret.get_secret_value() == "cb-1"  # type: ignore[union-attr]

    # Past it: the rotated values, and providers rebuilt with the new key
    clock[0] += 2
    assert get_settings().callback_signing_secret.get_secret_value() == "cb-2"  # type: ignore[union-attr]
    assert get_providers() is not evolink
    assert get_settings().evolink_api_key.get_secret_value() == "ev-2"  # type: ignore[union-attr]


def test_accounts_added_to_the_provider_secret_are_used_without_a_redeploy(
    secrets: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kling_pipeline.providers.base import ProviderName
    from kling_pipeline.providers.registry import get_accounts

    assert [a.name for a in get_accounts()[ProviderName.EVOLINK]] == ["default"]
    # The template's placeholder lists are empty: the single key still applies.
    _put(secrets, "providers", {"EVOLINK_API_KEY": "ev-1", "EVOLINK_ACCOUNTS": [], "KLING_ACCOUNTS": []})  # type: ignore[dict-item]
    monkeypatch.setattr(config, "SECRET_MAX_AGE_S", 0)
    assert [a.name for a in get_accounts()[ProviderName.EVOLINK]] == ["default"]
    accounts = [{"name": "a", "api_key": "ev-a", "concurrency": 3}, {"name": "b", "api_key": "ev-b"}]
    _put(secrets, "providers", {"EVOLINK_ACCOUNTS": accounts})  # type: ignore[dict-item]
    assert [(a.name, a.concurrency) for a in get_accounts()[ProviderName.EVOLINK]] == [("a", 3), ("b", 5)]
