"""Bad input fails before any HTTP traffic, with a typed error that names the problem.

Call-time mistakes (messages, parameters, per-call options) raise ``InvalidRequestError``;
settings mistakes (URL, api type, time-out, ...) raise ``ConfigurationError``. The endpoint
must not see a single connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from support import API_KEY, TLS_CONTEXT

from azml_chat import (
    AsyncChatClient,
    AzureMLChatError,
    ChatClient,
    ConfigurationError,
    InvalidRequestError,
    Message,
    RetryPolicy,
)
from azml_chat.testing import LocalEndpoint


@pytest.fixture(scope="module")
def quiet_endpoint() -> Iterator[LocalEndpoint]:
    """One endpoint for the module; every test asserts it was never contacted."""
    with LocalEndpoint(api_key=API_KEY) as endpoint:
        yield endpoint


class Unserializable:
    def __repr__(self) -> str:
        return "<Unserializable>"


# (id, messages, call keyword arguments, expected error type, pattern the message must match)
_CIRCULAR: list[Any] = []
_CIRCULAR.append(_CIRCULAR)  # a list that contains itself

BAD_CALLS: list[tuple[str, Any, dict[str, Any], type[AzureMLChatError], str]] = [
    ("empty-list", [], {}, InvalidRequestError, r"messages is empty"),
    ("empty-tuple", (), {}, InvalidRequestError, r"messages is empty"),
    ("unknown-role", [{"role": "wizard", "content": "hi"}], {}, InvalidRequestError, r"unknown message role 'wizard'"),
    ("unknown-role-message", [{"role": "User", "content": "hi"}], {}, InvalidRequestError, r"role 'User'"),
    ("missing-role", [{"content": "hi"}], {}, InvalidRequestError, r"no 'role'"),
    ("messages-int", 42, {}, InvalidRequestError, r"messages must be .*not int"),
    ("messages-none", None, {}, InvalidRequestError, r"messages must be .*not NoneType"),
    ("messages-bytes", b"hello", {}, InvalidRequestError, r"messages must be .*not bytes"),
    ("message-int-in-list", ["hi", 7], {}, InvalidRequestError, r"a message must be .*not int"),
    ("content-int", [{"role": "user", "content": 42}], {}, InvalidRequestError, r"content must be .*not int"),
    (
        "content-bad-part",
        [{"role": "user", "content": [{"type": "audio", "data": "x"}]}],
        {},
        InvalidRequestError,
        r"content parts must look like",
    ),
    ("name-int", [{"role": "user", "content": "hi", "name": 5}], {}, InvalidRequestError, r"'name' must be a string"),
    (
        "tool-call-id-list",
        [{"role": "tool", "content": "x", "tool_call_id": ["a"]}],
        {},
        InvalidRequestError,
        r"'tool_call_id' must be a string",
    ),
    (
        "tool-calls-str",
        [{"role": "assistant", "tool_calls": "f()"}],
        {},
        InvalidRequestError,
        r"'tool_calls' must be a list",
    ),
    (
        "tool-calls-malformed",
        [{"role": "assistant", "tool_calls": [{"id": "1"}]}],
        {},
        InvalidRequestError,
        r"tool calls must look like",
    ),
    ("param-object", "hi", {"temperature": Unserializable()}, InvalidRequestError, r"not JSON-serializable"),
    ("param-set", "hi", {"stop": {"a", "b"}}, InvalidRequestError, r"not JSON-serializable"),
    ("param-nan", "hi", {"temperature": float("nan")}, InvalidRequestError, r"not JSON-serializable"),
    ("param-inf", "hi", {"top_p": float("inf")}, InvalidRequestError, r"not JSON-serializable"),
    ("param-tuple-keys", "hi", {"extra_body": {"logit_bias": {(1, 2): 3}}}, InvalidRequestError, r"not JSON"),
    ("param-bytes", "hi", {"user": b"bob"}, InvalidRequestError, r"not JSON-serializable"),
    ("param-circular", "hi", {"extra_body": {"stop": _CIRCULAR}}, InvalidRequestError, r"circular reference"),
    ("lone-surrogate", "bad \ud800 text", {}, InvalidRequestError, r"lone surrogate"),
    ("lone-surrogate-in-param", "hi", {"user": "\udfff"}, InvalidRequestError, r"lone surrogate"),
    ("max-retries-negative", "hi", {"max_retries": -1}, InvalidRequestError, r"max_retries must be .*-1"),
    ("max-retries-str", "hi", {"max_retries": "3"}, InvalidRequestError, r"max_retries must be .*'3'"),
    ("max-retries-bool", "hi", {"max_retries": True}, InvalidRequestError, r"max_retries must be .*True"),
    ("max-retries-float", "hi", {"max_retries": 1.5}, InvalidRequestError, r"max_retries must be .*1\.5"),
    ("timeout-zero", "hi", {"timeout": 0}, InvalidRequestError, r"timeout must be .*0"),
    ("timeout-negative", "hi", {"timeout": -2.5}, InvalidRequestError, r"timeout must be .*-2\.5"),
    ("timeout-str", "hi", {"timeout": "fast"}, InvalidRequestError, r"timeout must be .*'fast'"),
]


def call_sync(url: str, method: str, messages: Any, kwargs: dict[str, Any]) -> None:
    with httpx.Client(verify=TLS_CONTEXT) as http, ChatClient(url, api_key=API_KEY, http_client=http) as client:
        if method == "chat":
            client.chat(messages, **kwargs)
        else:
            with client.stream(messages, **kwargs) as stream:
                list(stream)


def call_async(url: str, method: str, messages: Any, kwargs: dict[str, Any]) -> None:
    async def main() -> None:
        async with (
            httpx.AsyncClient(verify=TLS_CONTEXT) as http,
            AsyncChatClient(url, api_key=API_KEY, http_client=http) as client,
        ):
            if method == "chat":
                await client.chat(messages, **kwargs)
            else:
                async with client.stream(messages, **kwargs) as stream:
                    async for _ in stream:
                        pass

    anyio.run(main)


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("method", ["chat", "stream"])
@pytest.mark.parametrize(
    ("messages", "kwargs", "error", "pattern"), [row[1:] for row in BAD_CALLS], ids=[row[0] for row in BAD_CALLS]
)
def test_bad_call_fails_before_any_traffic(
    quiet_endpoint: LocalEndpoint,
    mode: str,
    method: str,
    messages: Any,
    kwargs: dict[str, Any],
    error: type[AzureMLChatError],
    pattern: str,
) -> None:
    before = quiet_endpoint.total_connections
    with pytest.raises(error) as info:
        (call_async if mode == "async" else call_sync)(quiet_endpoint.url, method, messages, kwargs)
    assert type(info.value) is error
    assert isinstance(info.value, ValueError)  # both input errors are ValueErrors too
    assert re.search(pattern, str(info.value)), str(info.value)
    assert quiet_endpoint.total_connections == before
    assert quiet_endpoint.requests == []


def test_message_objects_validate_at_construction() -> None:
    with pytest.raises(InvalidRequestError, match="unknown message role 'robot'"):
        Message("robot", "hi")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="content must be"):
        Message("user", 3.5)  # type: ignore[arg-type]


# (id, client settings, pattern the ConfigurationError must match)
BAD_SETTINGS: list[tuple[str, dict[str, Any], str]] = [
    ("url-missing", {"endpoint_url": None}, r"no endpoint URL"),
    ("url-empty", {"endpoint_url": ""}, r"endpoint_url is missing"),
    ("url-blank", {"endpoint_url": "   "}, r"endpoint_url is missing"),
    ("url-int", {"endpoint_url": 8080}, r"endpoint_url is missing or not a string"),
    ("url-no-scheme", {"endpoint_url": "my-ep.eastus.inference.ml.azure.com/score"}, r"http\(s\) URL"),
    ("url-ftp", {"endpoint_url": "ftp://my-ep.eastus.inference.ml.azure.com/score"}, r"http\(s\) URL"),
    ("url-no-host", {"endpoint_url": "https:///score"}, r"with a host|not a valid URL"),
    ("url-port-out-of-range", {"endpoint_url": "https://host:99999/score"}, r"port 99999, outside 1-65535"),
    ("url-port-zero", {"endpoint_url": "https://host:0/score"}, r"port 0, outside"),
    ("url-port-not-a-number", {"endpoint_url": "https://host:https/score"}, r"not a valid URL"),
    ("url-space-in-host", {"endpoint_url": "https://my ep.eastus.inference.ml.azure.com/score"}, r"whitespace"),
    (
        "url-with-password",
        {"endpoint_url": "https://bob:hunter2@ep.eastus.inference.ml.azure.com/score"},
        r"must not carry a user name or password",
    ),
    ("url-bad-ipv6", {"endpoint_url": "https://[::1/score"}, r"not a valid URL"),
    ("url-not-a-chat-route", {"endpoint_url": "https://ep.eastus.inference.ml.azure.com/predict"}, r"not a chat route"),
    (
        "url-serverless-on-score",
        {"endpoint_url": "https://ep.eastus.inference.ml.azure.com/score", "api_type": "serverless"},
        r"does not fit a /score URL",
    ),
    ("api-type-unknown", {"api_type": "batch"}, r"api_type 'batch' is not valid"),
    ("api-type-int", {"api_type": 3}, r"api_type 3 is not valid"),
    (
        "formatter-unknown",
        {"endpoint_url": "https://ep.eastus.inference.ml.azure.com/score", "formatter": "gpt-17"},
        r"gpt-17",
    ),
    ("timeout-zero", {"timeout": 0}, r"timeout must be"),
    ("timeout-str", {"timeout": "10"}, r"timeout must be"),
    ("timeout-bool", {"timeout": True}, r"timeout must be"),
    ("max-response-bytes-zero", {"max_response_bytes": 0}, r"max_response_bytes"),
    ("auth-header", {"auth_header": "basic"}, r"auth_header"),
    ("api-key-empty", {"api_key": ""}, r"api_key must be a non-empty string"),
    ("api-key-int", {"api_key": 1234}, r"api_key must be a non-empty string"),
    ("model-kwargs-list", {"model_kwargs": [("temperature", 1)]}, r"model_kwargs must be a dict"),
    ("api-key-inner-newline", {"api_key": "sk-from\na-file"}, r"api_key must be printable ASCII"),
    ("api-key-non-ascii", {"api_key": "cl\u00e9"}, r"api_key must be printable ASCII"),
    ("deployment-line-break", {"deployment_name": "blue\r\nx-evil: 1"}, r"deployment_name must be printable ASCII"),
    ("deployment-non-ascii", {"deployment_name": "d\u00e9ploiement"}, r"deployment_name must be printable"),
    ("header-value-int", {"headers": {"x-team": 7}}, r"header 'x-team' must be printable ASCII"),
    ("header-value-newline", {"headers": {"X-Trace": "a\nb"}}, r"header 'x-trace' must be printable"),
    ("header-name-space", {"headers": {"bad name": "v"}}, r"'bad name' is not a valid HTTP header name"),
    ("header-name-int", {"headers": {5: "v"}}, r"5 is not a valid HTTP header name"),
    ("headers-list", {"headers": [("x-a", "b")]}, r"headers must be a dict"),
    ("retry-policy-dict", {"retry_policy": {"initial_backoff": 1}}, r"retry_policy must be a RetryPolicy, not dict"),
]


@pytest.mark.parametrize("cls", [AsyncChatClient, ChatClient])
@pytest.mark.parametrize(
    ("settings", "pattern"), [row[1:] for row in BAD_SETTINGS], ids=[row[0] for row in BAD_SETTINGS]
)
def test_bad_settings_are_configuration_errors(cls: type[Any], settings: dict[str, Any], pattern: str) -> None:
    settings = {"endpoint_url": "https://ep.eastus.models.ai.azure.com/v1/chat/completions", "api_key": "k", **settings}
    url = settings.pop("endpoint_url")
    with pytest.raises(ConfigurationError) as info:
        cls(url, **settings)
    assert type(info.value) is ConfigurationError
    assert re.search(pattern, str(info.value)), str(info.value)
    for secret in ("sk-from-a-file", "cl\u00e9", "hunter2"):
        assert secret not in str(info.value)  # a rejected key is never quoted back


@pytest.mark.parametrize("cls", [AsyncChatClient, ChatClient])
@pytest.mark.parametrize("value", [-1, None, "2", 2.0, True])
def test_bad_max_retries_setting(cls: type[Any], value: Any) -> None:
    """A client-wide ``max_retries`` shares its check (and error type) with the per-call one."""
    with pytest.raises(InvalidRequestError, match=r"max_retries must be a whole number >= 0, not "):
        cls("https://ep.eastus.models.ai.azure.com/v1/chat/completions", api_key="k", max_retries=value)


@pytest.mark.parametrize(
    ("variable", "value", "pattern"),
    [
        ("AZUREML_TIMEOUT", "soon", r"AZUREML_TIMEOUT='soon' is not a number"),
        ("AZUREML_TIMEOUT", "-3", r"timeout must be"),
        ("AZUREML_ENDPOINT_API_TYPE", "gpu", r"api_type 'gpu' is not valid"),
        ("AZUREML_ENDPOINT_URL", "not a url at all", r"endpoint_url"),
    ],
)
def test_bad_environment_is_configuration_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, pattern: str
) -> None:
    monkeypatch.setenv("AZUREML_ENDPOINT_URL", "https://ep.eastus.models.ai.azure.com/v1/chat/completions")
    monkeypatch.setenv("AZUREML_ENDPOINT_API_KEY", "k")
    monkeypatch.setenv(variable, value)
    for cls in (AsyncChatClient, ChatClient):
        with pytest.raises(ConfigurationError, match=pattern):
            cls.from_env()


def test_bad_input_leaves_the_callers_objects_alone(quiet_endpoint: LocalEndpoint) -> None:
    """A failed validation must not have half-converted or mutated what the caller passed."""
    messages = [{"role": "system", "content": "be brief"}, {"role": "wizard", "content": "hi"}]
    params = {"temperature": 0.5, "stop": ["\n"]}
    snapshot = (repr(messages), repr(params))
    with ChatClient(quiet_endpoint.url, api_key=API_KEY) as client, pytest.raises(InvalidRequestError):
        client.chat(messages, **params)
    assert (repr(messages), repr(params)) == snapshot
    assert quiet_endpoint.requests == []


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((-1, 1, 1), r"initial_backoff must be >= 0"),
        ((0, float("nan"), 1), r"max_backoff must be >= 0"),
        ((0, 1, "60"), r"max_retry_after must be >= 0 seconds, not '60'"),
        ((None, 1, 1), r"initial_backoff must be"),
        ((True, 1, 1), r"initial_backoff must be"),
    ],
)
def test_bad_retry_policy(args: tuple[Any, ...], pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        RetryPolicy(*args)
