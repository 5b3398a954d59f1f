"""Secrets never leak: not in repr/str of any object, exception text, logs at any level, or CLI output.

Every scenario runs with all loggers at DEBUG; everything a user could see (reprs, ``str``
and tracebacks of errors with their causes, every log record, CLI stdout and stderr) goes
into one corpus, which must not contain the key or the token anywhere. The scenarios
include a gateway that echoes the request's credentials in its error page.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from azml_chat import (
    AsyncChatClient,
    AzureMLChatError,
    ChatClient,
    ConfigurationError,
    RetryPolicy,
)
from azml_chat.testing import Fault, LocalEndpoint

KEY = f"sk-live-{uuid.uuid4().hex}"  # unique, so any hit is a real leak
TOKEN = f"eyJ0eXAi.{uuid.uuid4().hex}.sig"
SECRETS = (KEY, TOKEN)
POLICY = RetryPolicy(initial_backoff=0.001, max_backoff=0.002, max_retry_after=0.01)


@dataclass
class AccessToken:
    token: str
    expires_on: float


class FakeCredential:
    """Like azure-identity's credentials: ``get_token(*scopes)``."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(TOKEN, time.time() + 3600)

    def __repr__(self) -> str:
        return "FakeCredential()"


class Corpus:
    """Everything a user could see, searched for secrets at the end."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, *objects: Any) -> None:
        for obj in objects:
            self.texts += [repr(obj), str(obj)]
            if isinstance(obj, BaseException):
                self.texts.append("".join(traceback.format_exception(obj)))  # with __cause__ / __context__
                self.texts.append(repr(vars(obj)))  # body, headers, message, ...

    def assert_clean(self, *extra: str) -> None:
        everything = "\n".join([*self.texts, *extra])
        assert everything  # the search had something to search
        for secret in SECRETS:
            assert secret not in everything, f"secret leaked: ...{everything[everything.find(secret) - 200 :][:400]}"
            assert secret[-12:] not in everything  # not even a tail of it


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record of the test's setup and call phases, formatted with its traceback if any."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(r) for when in ("setup", "call") for r in caplog.get_records(when)]


@pytest.fixture
def corpus(caplog: pytest.LogCaptureFixture) -> Iterator[Corpus]:
    caplog.set_level(logging.DEBUG)  # every logger, every level: azml_chat, httpx, httpcore, ...
    collected = Corpus()
    yield collected
    collected.assert_clean(*logged(caplog))


def test_the_search_finds_a_planted_secret(caplog: pytest.LogCaptureFixture) -> None:
    """The check is not a tautology: a secret in a log record or an error is found."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("azml_chat").debug("header was %s", f"Bearer {KEY}")
    with pytest.raises(AssertionError, match="secret leaked"):
        Corpus().assert_clean(*logged(caplog))
    planted = Corpus()
    planted.add(ValueError("wrapped", KEY[-12:]))
    with pytest.raises(AssertionError):
        planted.assert_clean()


def echo_page(secret: str) -> str:
    """A debugging gateway's error page that echoes the request headers."""
    return (
        "<html><body><h1>502 Bad Gateway</h1><pre>POST /v1/chat/completions\n"
        f"Authorization: Bearer {secret}\napi-key: {secret}\n</pre></body></html>"
    )


def scenarios(endpoint: LocalEndpoint, secret: str) -> list[tuple[str, list[Fault], str, dict[str, Any]]]:
    """(name, faults, call kind, call options): successes, retries and every kind of failure."""
    return [
        ("ok", [], "chat", {}),
        ("stream", [], "stream", {}),
        ("retried", [Fault(503, headers={"retry-after-ms": "1"}), Fault(drop="before_headers")], "chat", {}),
        ("status-error", [Fault(403)], "chat", {}),
        ("echoing-gateway", [Fault(502, body=echo_page(secret), content_type="text/html", times=3)], "chat", {}),
        ("echoing-json", [Fault(400, body={"error": {"message": f"bad key {secret}"}})], "chat", {}),
        ("echoing-stream", [Fault(500, body=f"upstream said: {secret}", times=3)], "stream", {}),
        ("echoing-query", [Fault(401, body={"error": {"message": f"denied for ?api-key={secret}."}})], "chat", {}),
        ("timeout", [Fault(delay_before_headers=0.3, times=3)], "chat", {"timeout": 0.05}),
        ("mid-body", [Fault(drop="in_body")], "chat", {}),
        ("mid-stream", [Fault(drop="mid_stream")], "stream", {}),
        ("event-error", [Fault(stream_error={"error": {"message": "filtered"}})], "stream", {}),
        ("bad-json", [Fault(body=b"{oops")], "chat", {}),
    ]


def run_scenario(client: ChatClient, kind: str, options: dict[str, Any], corpus: Corpus) -> None:
    try:
        if kind == "chat":
            corpus.add(client.chat("hello", **options))
        else:
            with client.stream("hello", **options) as stream:
                corpus.add(stream)
                for chunk in stream:
                    corpus.add(chunk)
                corpus.add(stream.get_final_response(), stream.get_final_response().message)
    except AzureMLChatError as exc:
        corpus.add(exc)


async def run_scenario_async(client: AsyncChatClient, kind: str, options: dict[str, Any], corpus: Corpus) -> None:
    try:
        if kind == "chat":
            corpus.add(await client.chat("hello", **options))
        else:
            async with client.stream("hello", **options) as stream:
                corpus.add(stream)
                async for chunk in stream:
                    corpus.add(chunk)
                corpus.add(await stream.get_final_response())
    except AzureMLChatError as exc:
        corpus.add(exc)


Settings = Callable[[], dict[str, Any]]
AUTH_STYLES: dict[str, tuple[dict[str, Any], Settings]] = {
    "bearer-key": ({"api_key": KEY}, lambda: {"api_key": KEY}),
    "api-key-header": ({"api_key": KEY}, lambda: {"api_key": KEY, "auth_header": "api-key"}),
    "entra-token": ({"api_key": None, "token_validator": TOKEN.__eq__}, lambda: {"credential": FakeCredential()}),
    "key-in-headers": ({"api_key": KEY}, lambda: {"api_key": None, "headers": {"Authorization": f"Bearer {KEY}"}}),
}


@pytest.mark.parametrize("auth", list(AUTH_STYLES))
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_no_secret_in_objects_errors_or_logs(
    auth: str, mode: str, corpus: Corpus, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint_settings, client_settings = AUTH_STYLES[auth]
    secret = TOKEN if auth == "entra-token" else KEY
    outcomes: list[str] = []
    with LocalEndpoint(**endpoint_settings) as endpoint:
        cases = scenarios(endpoint, secret)
        for name, faults, kind, options in cases:
            endpoint.clear()
            for fault in faults:
                endpoint.add_fault(fault)
            settings = {"retry_policy": POLICY, **client_settings()}
            if mode == "sync":
                with ChatClient(endpoint.url, **settings) as client:
                    corpus.add(client, client.formatter, client.settings.retry_policy, client._tokens)
                    run_scenario(client, kind, options, corpus)
            else:

                async def main(settings: dict[str, Any] = settings, kind: str = kind, options: Any = options) -> None:
                    async with AsyncChatClient(endpoint.url, **settings) as client:
                        corpus.add(client, client._tokens)
                        await run_scenario_async(client, kind, options, corpus)

                anyio.run(main)
            outcomes.append(name)
            # the secret really went out (so the search is meaningful) ...
            sent = endpoint.requests[0].headers
            assert secret in sent.get("authorization", "") + sent.get("api-key", "")
    assert len(outcomes) == len(cases)
    # ... and the echoed copies were redacted, not dropped with the rest of the message
    assert any("[redacted]" in text for text in corpus.texts)
    debug_lines = [r for r in caplog.records if r.name == "azml_chat" and r.levelno == logging.DEBUG]
    assert len(debug_lines) > len(cases)  # DEBUG logging was on: the search covered it


def test_debug_log_shows_requests_retries_and_timings(caplog: pytest.LogCaptureFixture, corpus: Corpus) -> None:
    caplog.set_level(logging.DEBUG, logger="azml_chat")
    with LocalEndpoint(api_key=KEY) as endpoint, ChatClient(endpoint.url, api_key=KEY, retry_policy=POLICY) as client:
        url = endpoint.url
        endpoint.add_fault(Fault(503, headers={"retry-after-ms": "5"}))
        assert client.chat("hi").content == "hi"
        with client.stream("streamed") as stream:
            assert stream.get_final_response().content == "streamed"
        endpoint.add_fault(Fault(404))
        with pytest.raises(AzureMLChatError):
            client.chat("gone")
    ours = [r for r in caplog.records if r.name == "azml_chat"]
    text = "\n".join(f"{r.levelname} {r.getMessage()}" for r in ours)
    assert f"DEBUG POST {url} (attempt 1 of 3)" in text
    assert "DEBUG HTTP 503 after " in text
    assert "INFO attempt 1 failed (HTTP 503" in text
    assert "retrying in 0.005s" in text
    assert f"DEBUG POST {url} (attempt 2 of 3)" in text
    assert "DEBUG HTTP 200 after " in text
    assert " ms (request id " in text
    assert "DEBUG reply ended: " in text
    assert "DEBUG stream ended: " in text
    assert "not retrying" in text  # the 404 was not retried, and the log says so
    corpus.add(text)


@pytest.mark.parametrize(
    "settings",
    [
        {"api_key": KEY + "\n" + KEY},  # two keys pasted on two lines
        {"api_key": KEY + "\u00e9"},
        {"api_key": KEY, "headers": {"x-extra": "a\r\nb"}},
        {"api_key": KEY, "endpoint_url": f"https://user:{KEY}@ep.eastus.inference.ml.azure.com/score"},
        {"api_key": KEY, "timeout": -1},
        {"api_key": KEY, "api_type": "serverless", "endpoint_url": "https://ep.eastus.inference.ml.azure.com/score"},
    ],
)
def test_no_secret_in_configuration_errors(settings: dict[str, Any], corpus: Corpus) -> None:
    settings = {"endpoint_url": "https://ep.eastus.models.ai.azure.com/v1/chat/completions", **settings}
    for cls in (ChatClient, AsyncChatClient):
        with pytest.raises(ConfigurationError) as info:
            cls(**settings)
        corpus.add(info.value)


# --- the CLI ----------------------------------------------------------------------------------

DEBUG_CLI = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG); "
    "from azml_chat.cli import main; sys.exit(main(sys.argv[1:]))"
)


def run_cli(args: list[str], env: dict[str, str], *, debug: bool) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AZUREML_")}
    command = [sys.executable, "-c", DEBUG_CLI] if debug else [sys.executable, "-m", "azml_chat.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, env={**clean, **env}, check=False
    )


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug-logging"])
def test_no_secret_in_cli_output(debug: bool) -> None:
    pytest.importorskip("azml_chat.cli")
    outputs: list[str] = []
    with LocalEndpoint(api_key=KEY) as endpoint:
        env = {"AZUREML_ENDPOINT_URL": endpoint.url, "AZUREML_ENDPOINT_API_KEY": KEY}
        runs: list[tuple[list[Fault], list[str], dict[str, str], int]] = [
            ([], ["chat", "hello"], env, 0),
            ([], ["chat", "--stream", "--json", "hello"], env, 0),
            ([Fault(503, headers={"retry-after-ms": "1"})], ["chat", "retried"], env, 0),
            ([Fault(502, body=echo_page(KEY), content_type="text/html", times=5)], ["chat", "echo"], env, 1),
            ([Fault(drop="mid_stream")], ["chat", "--stream", "cut"], env, 1),
            ([Fault(delay_before_headers=0.5, times=5)], ["chat", "--timeout", "0.1", "slow"], env, 1),
            ([], ["chat", "x"], {**env, "AZUREML_ENDPOINT_API_KEY": KEY + "\n"}, 0),  # stripped
            ([], ["chat", "x", "--api-key", KEY, "--url", f"http://u:{KEY}@127.0.0.1/score"], {}, 2),
            ([], ["chat", "x"], {**env, "AZUREML_ENDPOINT_API_KEY": "wrong-key"}, 1),
        ]
        if not debug:  # `python -m azml_chat.cli` as is: the main paths are enough
            runs = [runs[0], runs[1], runs[3], runs[6]]
        for faults, args, run_env, status in runs:
            endpoint.clear()
            for fault in faults:
                endpoint.add_fault(fault)
            result = run_cli(args, run_env, debug=debug)
            assert result.returncode == status, (args, result.stderr)
            outputs += [result.stdout, result.stderr]
    if debug:
        assert "DEBUG:azml_chat:POST " in "".join(outputs)  # the DEBUG log really was on
    corpus = Corpus()
    corpus.assert_clean(*outputs)


def test_a_key_with_surrounding_whitespace_is_stripped(endpoint: LocalEndpoint) -> None:
    """A key read from a file or a shell variable keeps its newline: it is stripped, never sent as is."""
    with ChatClient(endpoint.url, api_key=f"  {KEY}\n") as client:
        assert client.settings.key == KEY
        assert client.settings.api_key == KEY
