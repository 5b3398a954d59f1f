"""Both clients over real HTTP against the embedded endpoint: kinds, families, shapes, errors, retries."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import pytest
from support import API_KEY, MODES, ClientRunner, with_client

from azml_chat import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncChatClient,
    AuthenticationError,
    BadRequestError,
    ChatClient,
    ConfigurationError,
    Message,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
)
from azml_chat.testing import Fault, LocalEndpoint

HISTORY = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": 'Quote: "a\\b"\nnew line'},
]


def test_serverless_round_trip(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    reply = runner.chat(endpoint.url, HISTORY, temperature=0.8, max_tokens=64)
    assert reply.content == 'Quote: "a\\b"\nnew line'
    assert reply.finish_reason == "stop"
    assert reply.model == "local-model" and reply.id and reply.id.startswith("chatcmpl-")
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 4
    assert reply.request_id and len(reply.request_id) == 36
    assert reply.elapsed is not None and reply.elapsed > 0
    assert reply.raw["object"] == "chat.completion"
    request = endpoint.requests[-1]
    assert request.path == "/v1/chat/completions" and request.query == {}
    assert request.json == {"temperature": 0.8, "max_tokens": 64, "messages": HISTORY}
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["user-agent"].startswith("azml-chat/")
    assert len(request.headers["x-ms-client-request-id"]) == 36
    assert "extra-parameters" not in request.headers


def test_prompt_is_escaped_exactly_once(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    text = 'He said "hi"\\n\n\ttab ✓ 🚀'
    assert runner.chat(endpoint.url, text).content == text
    assert (
        endpoint.requests[-1].body
        == b'{"messages":[{"role":"user","content":"He said \\"hi\\"\\\\n\\n\\ttab \xe2\x9c\x93 \xf0\x9f\x9a\x80"}]}'
    )


@pytest.mark.parametrize("path", ["/chat/completions", "/models/chat/completions"])
def test_api_version_routes(runner: ClientRunner, endpoint: LocalEndpoint, path: str) -> None:
    reply = runner.chat(endpoint.base_url + path, "versioned", client={"api_version": "2025-04-01"})
    assert reply.content == "versioned"
    assert endpoint.requests[-1].query == {"api-version": "2025-04-01"}


@pytest.mark.parametrize(
    ("family", "shape", "formatter"),
    [
        ("llama", "output", "llama"),
        ("llama", "output_list", "hf"),
        ("llama", "double_encoded", "llama3"),
        ("llama", "list", "llama"),
        ("llama", "openai", "llama"),
        ("phi", "output", "phi"),
        ("mistral", "output", "mistral"),
        ("text-generation", "list0", "gpt2"),
        ("text-generation", "generated_text", "dolly"),
        ("openai", "openai", "openai"),
    ],
)
def test_dedicated_families_and_reply_shapes(runner: ClientRunner, family: str, shape: str, formatter: str) -> None:
    with LocalEndpoint(kind="dedicated", family=family, reply_shape=shape, api_key=API_KEY) as endpoint:
        messages: list[Any] = ["What is 2+2?"] if family == "text-generation" else HISTORY
        reply = runner.chat(endpoint.url, messages, client={"formatter": formatter}, max_tokens=7)
        expected = messages[-1] if isinstance(messages[-1], str) else messages[-1]["content"]
        if family == "mistral":  # the system turn was merged into the user turn the model echoes
            expected = f"{HISTORY[0]['content']}\n\n{expected}"
        assert reply.content == expected
        body = endpoint.requests[-1].json
        if family == "openai":
            assert body["max_tokens"] == 7
        elif family == "text-generation":  # the container must not echo the prompt back
            assert body["input_data"]["parameters"] == {"max_new_tokens": 7, "return_full_text": False}
        else:
            assert body["input_data"]["parameters"] == {"max_new_tokens": 7}


def test_mistral_request_on_the_wire(runner: ClientRunner, dedicated: LocalEndpoint) -> None:
    runner.chat(dedicated.url, HISTORY, client={"formatter": "mistral"})
    assert dedicated.requests[-1].json["input_data"]["input_string"] == [
        {"role": "user", "content": 'You are terse.\n\nQuote: "a\\b"\nnew line'}
    ]


def test_hf_families_send_openai_bodies_on_chat_routes(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    runner.chat(endpoint.url, "hello", client={"formatter": "llama"}, max_tokens=3)
    assert endpoint.requests[-1].json == {"max_tokens": 3, "messages": [{"role": "user", "content": "hello"}]}


def test_deployment_header(runner: ClientRunner) -> None:
    with LocalEndpoint(kind="dedicated", deployments=["blue"], api_key=API_KEY) as endpoint:
        assert runner.chat(endpoint.url, "hi", client={"deployment_name": "blue"}).content == "hi"
        assert endpoint.requests[-1].headers["azureml-model-deployment"] == "blue"
        with pytest.raises(NotFoundError) as info:
            runner.chat(endpoint.url, "hi", client={"deployment_name": "green"})
        assert info.value.status_code == 404 and info.value.request_id
        assert "green" in info.value.message


def test_api_key_header_style_and_model(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    reply = runner.chat(endpoint.url, "hi", client={"auth_header": "api-key", "model": "mistral-large"})
    assert reply.model == "mistral-large"
    request = endpoint.requests[-1]
    assert request.headers["api-key"] == API_KEY and "authorization" not in request.headers
    assert request.json["model"] == "mistral-large"


def test_model_kwargs_merge_without_leaking(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    defaults = {"temperature": 0.5, "top_p": 0.9}
    settings = {"model_kwargs": defaults}
    runner.chat(endpoint.url, "one", client=settings, max_tokens=512, temperature=0.1)
    runner.chat(endpoint.url, "two", client=settings)
    runner.chat(endpoint.url, "three", client=settings, top_p=None)
    first, second, third = (request.json for request in endpoint.requests[-3:])
    assert {k: v for k, v in first.items() if k != "messages"} == {"temperature": 0.1, "top_p": 0.9, "max_tokens": 512}
    assert {k: v for k, v in second.items() if k != "messages"} == {"temperature": 0.5, "top_p": 0.9}
    assert {k: v for k, v in third.items() if k != "messages"} == {"temperature": 0.5}
    assert defaults == {"temperature": 0.5, "top_p": 0.9}


def test_one_client_many_calls_do_not_leak(endpoint: LocalEndpoint) -> None:
    with ChatClient(endpoint.url, api_key=API_KEY, model_kwargs={"temperature": 0.2}) as client:
        client.chat("a", max_tokens=5, seed=1)
        client.chat("b")
        assert client.model_kwargs == {"temperature": 0.2}
    assert endpoint.requests[-1].json == {"temperature": 0.2, "messages": [{"role": "user", "content": "b"}]}


def test_extra_parameters_go_out_with_pass_through(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    runner.chat(endpoint.url, "hi", extra_body={"top_k": 5}, n=1)
    request = endpoint.requests[-1]
    assert request.headers["extra-parameters"] == "pass-through"
    assert request.json["top_k"] == 5


@pytest.mark.parametrize(
    ("fault", "error", "status", "fragment"),
    [
        (
            Fault(400, body={"error": {"code": "BadParam", "message": "temperature too hot"}}),
            BadRequestError,
            400,
            "temperature too hot",
        ),
        (
            Fault(422, body={"detail": [{"loc": ["body", "top_k"], "msg": "extra not allowed", "type": "x"}]}),
            BadRequestError,
            422,
            "body.top_k: extra not allowed",
        ),
        (Fault(403), PermissionDeniedError, 403, ""),
        (Fault(404, body={"detail": "Not Found"}), NotFoundError, 404, "Not Found"),
        (Fault(429, times=3), RateLimitError, 429, ""),
        (Fault(500, body={"message": "run() failed: boom"}, times=3), ServerError, 500, "run() failed: boom"),
        (
            Fault(502, body="<html><body>Bad Gateway</body></html>", content_type="text/html", times=3),
            ServerError,
            502,
            "HTML page",
        ),
        (
            Fault(
                424,
                headers={"ms-azureml-model-error-statuscode": "400", "ms-azureml-model-error-reason": "model_error"},
            ),
            ModelError,
            424,
            "model_error",
        ),
        (Fault(409, body={"message": "conflict"}), APIStatusError, 409, "conflict"),
    ],
)
def test_status_errors_are_typed(
    runner: ClientRunner,
    endpoint: LocalEndpoint,
    fault: Fault,
    error: type[APIStatusError],
    status: int,
    fragment: str,
) -> None:
    endpoint.add_fault(fault)
    with pytest.raises(error) as info:
        runner.chat(endpoint.url, "hi")
    assert type(info.value) is error
    assert info.value.status_code == status
    assert fragment in str(info.value)
    assert info.value.request_id and info.value.request_id in str(info.value)
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value.headers)


def test_wrong_key_is_authentication_error(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    with pytest.raises(AuthenticationError) as info:
        runner.chat(endpoint.url, "hi", client={"api_key": "wrong-key"})
    assert info.value.status_code == 401 and len(endpoint.requests) == 1
    assert "wrong-key" not in str(info.value)


def test_model_error_carries_model_status(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(
        Fault(
            424,
            headers={"ms-azureml-model-error-statuscode": "503", "ms-azureml-model-error-reason": "not ready"},
            times=5,
        )
    )
    with pytest.raises(ModelError) as info:
        runner.chat(endpoint.url, "hi", max_retries=1)
    assert (info.value.model_status, info.value.model_reason) == (503, "not ready")
    assert len(endpoint.requests) == 2  # a 424 whose model status is retryable is retried


@pytest.mark.parametrize(
    "headers",
    [{"retry-after-ms": "60"}, {"x-ms-retry-after-ms": "60"}, {"retry-after": "0.06"}],
)
def test_retry_after_is_honoured(runner: ClientRunner, endpoint: LocalEndpoint, headers: dict[str, str]) -> None:
    endpoint.add_fault(Fault(503, headers=headers))
    started = time.monotonic()
    assert runner.chat(endpoint.url, "after wait").content == "after wait"
    assert time.monotonic() - started >= 0.05
    assert len(endpoint.requests) == 2


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_then_success(runner: ClientRunner, endpoint: LocalEndpoint, status: int) -> None:
    endpoint.add_fault(Fault(status, times=2))
    assert runner.chat(endpoint.url, "eventually").content == "eventually"
    assert len(endpoint.requests) == 3


def test_per_call_max_retries(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(503, times=10))
    with pytest.raises(ServerError):
        runner.chat(endpoint.url, "x", max_retries=0)
    assert len(endpoint.requests) == 1
    with pytest.raises(ServerError):
        runner.chat(endpoint.url, "x", client={"max_retries": 3})
    assert len(endpoint.requests) == 5


def test_non_retryable_is_sent_once(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(400, times=5))
    with pytest.raises(BadRequestError):
        runner.chat(endpoint.url, "x", client={"max_retries": 4})
    assert len(endpoint.requests) == 1


def test_error_body_with_200(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(200, body={"output": None, "error": {"message": "OOM"}}))
    with pytest.raises(ModelError, match="OOM") as info:
        runner.chat(endpoint.score_url, "x")
    assert info.value.status_code == 200 and info.value.request_id


def test_unparseable_200(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(200, body=b"{not json", content_type="application/json"))
    with pytest.raises(ResponseFormatError, match="not JSON") as info:
        runner.chat(endpoint.url, "x")
    assert info.value.excerpt == "{not json"


def test_connection_refused(runner: ClientRunner) -> None:
    with LocalEndpoint() as endpoint:
        url = endpoint.url
    with pytest.raises(APIConnectionError, match=r"could not connect to 127\.0\.0\.1:\d+"):
        runner.chat(url, "x", max_retries=1)


def test_read_timeout(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(delay_before_headers=1.0))
    with pytest.raises(APITimeoutError):
        runner.chat(endpoint.url, "x", timeout=0.2, max_retries=0)


def test_dedicated_stream_is_one_chunk(runner: ClientRunner, dedicated: LocalEndpoint) -> None:
    chunks, reply = runner.stream(dedicated.url, "whole reply")
    assert [chunk.content for chunk in chunks] == ["whole reply"]
    assert reply.content == "whole reply"
    assert "stream" not in dedicated.requests[-1].json["input_data"]["parameters"]


def test_serverless_stream(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    chunks, reply = runner.stream(endpoint.url, "one two three", stream_options={"include_usage": True})
    assert "".join(chunk.content for chunk in chunks) == "one two three"
    assert len(chunks) > 3 and reply.content == "one two three" and reply.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    assert endpoint.requests[-1].json["stream"] is True


def test_model_info(endpoint: LocalEndpoint) -> None:
    with ChatClient(endpoint.url, api_key=API_KEY) as client:
        info = client.model_info()
    assert (info.model_name, info.model_type) == ("local-model", "chat-completion")

    async def run() -> None:
        async with AsyncChatClient(endpoint.url, api_key=API_KEY) as client:
            assert (await client.model_info()).model_provider_name == "Local"
            bad = AsyncChatClient(endpoint.url, api_key="nope")
            with pytest.raises(AuthenticationError):
                await bad.model_info()
            await bad.aclose()

    anyio.run(run)


@pytest.mark.parametrize("mode", [*MODES, "aiohttp"])
def test_model_info_is_retried_as_a_chat_is(endpoint: LocalEndpoint, mode: str) -> None:
    endpoint.add_fault(Fault(503))
    info = with_client(mode, endpoint.url, lambda c: c.model_info(), lambda c: c.model_info())
    assert info.model_name == "local-model"
    assert [request.path for request in endpoint.requests] == ["/info", "/info"]
    endpoint.add_fault(Fault(503, times=5))
    with pytest.raises(ServerError):
        with_client(mode, endpoint.url, lambda c: c.model_info(), lambda c: c.model_info(), max_retries=1)
    assert len(endpoint.requests) == 4  # max_retries applies: GET /info is as safe to repeat as a chat


def test_caller_owned_http_clients_stay_open(endpoint: LocalEndpoint) -> None:
    with httpx.Client() as http:
        with ChatClient(endpoint.url, api_key=API_KEY, http_client=http) as client:
            client.chat("x")
        assert not http.is_closed

    async def run() -> None:
        async with httpx.AsyncClient() as http:
            async with AsyncChatClient(endpoint.url, api_key=API_KEY, http_client=http) as client:
                await client.chat("x")
            assert not http.is_closed

    anyio.run(run)


@pytest.mark.parametrize("driver", ["httpx2", "aiohttp"])
def test_an_async_client_works_in_a_second_event_loop(endpoint: LocalEndpoint, driver: Any) -> None:
    """Its own pool belongs to the first loop; a second asyncio.run() gets a fresh one with the
    same headers, and a third may close the client."""
    import asyncio

    client = AsyncChatClient(endpoint.url, api_key=API_KEY, headers={"x-team": "red"}, driver=driver)

    async def one(prompt: str) -> str:
        return (await client.chat(prompt)).content

    assert asyncio.run(one("first loop")) == "first loop"
    assert asyncio.run(one("second loop")) == "second loop"
    asyncio.run(client.aclose())
    first, second = endpoint.requests
    for request in (first, second):
        assert request.headers["x-team"] == "red"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"


class TracingClient(httpx.Client):
    """A caller's own subclass of httpx.Client, defined outside httpx."""


class AsyncTracingClient(httpx.AsyncClient):
    """The same for httpx.AsyncClient (as httpx_aiohttp.HttpxAiohttpClient is)."""


def test_subclasses_of_httpx_clients_are_httpx_clients(endpoint: LocalEndpoint) -> None:
    with TracingClient() as http, ChatClient(endpoint.url, api_key=API_KEY, http_client=http) as client:
        assert (client.driver, client.chat("sub").content) == ("httpx", "sub")

    async def run() -> None:
        async with (
            AsyncTracingClient() as http,
            AsyncChatClient(endpoint.url, api_key=API_KEY, http_client=http) as client,
        ):
            assert (client.driver, (await client.chat("async sub")).content) == ("httpx", "async sub")

    anyio.run(run)


def test_messages_objects_and_tool_history(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    from azml_chat import ToolCall

    history = [
        Message.user("weather?"),
        Message.assistant(None, [ToolCall("c1", "weather", '{"city": "Oslo"}')]),
        Message.tool("rain", "c1"),
        Message.user("thanks"),
    ]
    runner.chat(endpoint.url, history)
    sent = endpoint.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "weather", "arguments": '{"city": "Oslo"}'}
    assert sent[2] == {"role": "tool", "content": "rain", "tool_call_id": "c1"}


def test_reply_size_limit(runner: ClientRunner, endpoint: LocalEndpoint) -> None:
    with pytest.raises(ResponseFormatError, match="max_response_bytes"):
        runner.chat(endpoint.url, "x" * 5000, client={"max_response_bytes": 1000})


class InFlight:
    """A responder that answers slowly and records the most requests it served at once."""

    def __init__(self) -> None:
        self.now = self.peak = 0

    async def __call__(self, turn: Any) -> str:
        self.now += 1
        self.peak = max(self.peak, self.now)
        await anyio.sleep(0.02)
        self.now -= 1
        return "ok"


def test_max_concurrency_bounds_calls_in_flight() -> None:
    seen = InFlight()
    with LocalEndpoint(api_key=API_KEY, responder=seen) as endpoint:

        async def run() -> None:
            async with AsyncChatClient(endpoint.url, api_key=API_KEY, max_concurrency=3) as client:

                async def one(i: int) -> None:
                    if i % 2:
                        assert (await client.chat("x")).content == "ok"
                    else:
                        async with client.stream("x") as stream:
                            assert (await stream.get_final_response()).content == "ok"

                async with anyio.create_task_group() as group:
                    for i in range(12):
                        group.start_soon(one, i)

        anyio.run(run)
        assert (seen.peak, len(endpoint.requests)) == (3, 12)

        seen.peak = 0
        with ChatClient(endpoint.url, api_key=API_KEY, max_concurrency=2) as client, ThreadPoolExecutor(6) as pool:

            def sync_one(i: int) -> str:
                if i % 2:
                    return client.chat("x").content
                with client.stream("x") as stream:  # a stream holds its slot until it ends
                    return stream.get_final_response().content

            assert list(pool.map(sync_one, range(6))) == ["ok"] * 6
        assert seen.peak == 2


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "4"])
def test_max_concurrency_must_be_a_positive_whole_number(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        ChatClient("https://a.b/score", max_concurrency=value)
