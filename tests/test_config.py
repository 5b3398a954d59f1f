"""URL and api-type inference, environment settings and client construction errors."""

from __future__ import annotations

import enum

import pytest

from azml_chat import AsyncChatClient, ChatClient, ConfigurationError, InvalidRequestError
from azml_chat.config import parse_endpoint, settings_from_env


@pytest.mark.parametrize(
    ("url", "api_type", "expected_url", "kind", "route"),
    [
        (
            "https://ep.eastus.inference.ml.azure.com/score",
            None,
            "https://ep.eastus.inference.ml.azure.com/score",
            "dedicated",
            "score",
        ),
        (
            "https://ep.eastus.inference.ml.azure.com",
            None,
            "https://ep.eastus.inference.ml.azure.com/score",
            "dedicated",
            "score",
        ),
        (
            "https://ep.eastus.inference.ml.azure.com/v1/chat/completions",
            None,
            "https://ep.eastus.inference.ml.azure.com/v1/chat/completions",
            "dedicated",
            "v1-chat",
        ),
        (
            "https://m.eastus2.models.ai.azure.com/v1/chat/completions",
            None,
            "https://m.eastus2.models.ai.azure.com/v1/chat/completions",
            "serverless",
            "v1-chat",
        ),
        (
            "https://m.eastus2.models.ai.azure.com",
            None,
            "https://m.eastus2.models.ai.azure.com/v1/chat/completions",
            "serverless",
            "v1-chat",
        ),
        (
            "https://m.eastus2.models.ai.azure.com/chat/completions",
            "serverless",
            "https://m.eastus2.models.ai.azure.com/chat/completions?api-version=2024-05-01-preview",
            "serverless",
            "chat",
        ),
        (
            "https://r.services.ai.azure.com/models",
            None,
            "https://r.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview",
            "foundry",
            "models-chat",
        ),
        (
            "https://r.services.ai.azure.com/models/chat/completions?api-version=2025-04-01",
            None,
            "https://r.services.ai.azure.com/models/chat/completions?api-version=2025-04-01",
            "foundry",
            "models-chat",
        ),
        (
            "https://ep.eastus.inference.ml.azure.com/score?foo=bar",
            "realtime",
            "https://ep.eastus.inference.ml.azure.com/score?foo=bar",
            "dedicated",
            "score",
        ),
        ("http://127.0.0.1:8080/", "dedicated", "http://127.0.0.1:8080/score", "dedicated", "score"),
    ],
)
def test_parse_endpoint(url: str, api_type: str | None, expected_url: str, kind: str, route: str) -> None:
    endpoint = parse_endpoint(url, api_type)
    assert (endpoint.url, endpoint.api_type, endpoint.route) == (expected_url, kind, route)


def test_query_string_is_kept_and_api_version_added() -> None:
    endpoint = parse_endpoint("https://x.models.ai.azure.com/chat/completions?sig=abc", None, "2025-04-01")
    assert endpoint.url == "https://x.models.ai.azure.com/chat/completions?sig=abc&api-version=2025-04-01"
    assert endpoint.info_url == "https://x.models.ai.azure.com/info?sig=abc&api-version=2025-04-01"


def test_info_url_of_v1_route() -> None:
    endpoint = parse_endpoint("https://x.models.ai.azure.com/v1/chat/completions")
    assert endpoint.info_url == "https://x.models.ai.azure.com/info?api-version=2024-05-01-preview"


def test_api_type_accepts_enums() -> None:
    class ApiType(enum.StrEnum):
        realtime = "realtime"

    assert parse_endpoint("https://a.b/score", ApiType.realtime).api_type == "dedicated"


@pytest.mark.parametrize(
    ("url", "api_type", "fragment"),
    [
        ("", None, "missing"),
        (None, None, "missing"),
        (42, None, "missing"),
        ("ftp://host/score", None, "http(s)"),
        ("not a url", None, "http(s)"),
        ("https://host/predict", None, "not a chat route"),
        ("https://host/score", "serverless", "does not fit a /score URL"),
        ("https://host/score", "batch", "'dedicated', 'serverless', 'foundry' or 'azure-openai'"),
        ("http://[::1/score", None, "not a valid URL"),
    ],
)
def test_bad_urls_say_what_the_url_should_look_like(url: object, api_type: str | None, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_endpoint(url, api_type)
    assert fragment in str(info.value)


def test_settings_from_env() -> None:
    env = {
        "AZUREML_ENDPOINT_URL": "https://a.b/score",
        "AZUREML_ENDPOINT_API_KEY": "k",
        "AZUREML_DEPLOYMENT_NAME": "blue",
        "AZUREML_ENDPOINT_API_TYPE": "realtime",
        "AZUREML_TIMEOUT": "12.5",
    }
    assert settings_from_env(env) == {
        "endpoint_url": "https://a.b/score",
        "api_key": "k",
        "deployment_name": "blue",
        "api_type": "realtime",
        "timeout": 12.5,
    }
    with pytest.raises(ConfigurationError, match="AZUREML_TIMEOUT"):
        settings_from_env({"AZUREML_TIMEOUT": "soon"})


def test_client_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_URL", "https://ep.westus.inference.ml.azure.com/score")
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", "secret-from-env")
    monkeypatch.setenv("AZUREML_DEPLOYMENT_NAME", "green")
    monkeypatch.setenv("AZUREML_TIMEOUT", "7")
    for client in (ChatClient(), ChatClient.from_env(), AsyncChatClient.from_env(timeout=3)):
        assert client.api_type == "dedicated"
        assert client.deployment_name == "green"
        assert "secret-from-env" not in repr(client)
    assert ChatClient().timeout == 7.0
    assert AsyncChatClient.from_env(timeout=3).timeout == 3.0


def test_missing_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="AZUREML_ENDPOINT_URL"):
        ChatClient()


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"timeout": 0}, ConfigurationError, "timeout"),
        ({"timeout": "5"}, ConfigurationError, "timeout"),
        ({"max_retries": -1}, InvalidRequestError, "max_retries"),
        ({"max_retries": 1.5}, InvalidRequestError, "max_retries"),
        ({"model_kwargs": [("temperature", 1)]}, ConfigurationError, "model_kwargs"),
        ({"api_key": ""}, ConfigurationError, "api_key"),
        ({"auth_header": "basic"}, ConfigurationError, "auth_header"),
        ({"max_response_bytes": 0}, ConfigurationError, "max_response_bytes"),
        ({"formatter": "gpt-17"}, ConfigurationError, "unknown formatter"),
        ({"formatter": 3}, ConfigurationError, "formatter must be"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        ChatClient("https://a.b/score", **kwargs)  # type: ignore[arg-type]


def test_repr_hides_key_and_names_the_setup() -> None:
    client = ChatClient("https://a.b/score", api_key="sk-very-secret", formatter="mistral", deployment_name="blue")
    text = repr(client)
    assert "sk-very-secret" not in text
    assert "mistral" in text and "blue" in text and "auth='api-key'" in text
