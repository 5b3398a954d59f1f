"""What a demanding user hits in the first hour: each test here failed before its fix."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
import httpx
import pytest
from support import API_KEY, FAST_RETRIES, mode_param, with_client

from azml_chat import (
    APITimeoutError,
    AsyncChatClient,
    AuthenticationError,
    ChatClient,
    ClientClosedError,
    ConfigurationError,
    InvalidRequestError,
    Message,
    NotFoundError,
    ServerError,
    StreamError,
    ToolCall,
)
from azml_chat.testing import Fault, LocalEndpoint

SSE = "text/event-stream"


def sse(*deltas: dict[str, Any]) -> str:
    events = [{"choices": [{"index": 0, "delta": delta}]} for delta in deltas]
    return "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"


# --- time-outs ---------------------------------------------------------------------------------


def test_timeout_none_means_no_timeout_and_inf_means_none(endpoint: LocalEndpoint) -> None:
    for value in (None, float("inf")):
        with ChatClient(endpoint.url, api_key=API_KEY, timeout=value) as client:
            assert client.timeout is None
    with ChatClient(endpoint.url, api_key=API_KEY, timeout=0.05, max_retries=0) as client:
        endpoint.add_fault(Fault(delay_before_headers=0.3))
        with pytest.raises(APITimeoutError, match=r"timeout=0\.05s; raise it with timeout= or AZUREML_TIMEOUT"):
            client.chat("slow")
        endpoint.add_fault(Fault(delay_before_headers=0.3))
        assert client.chat("no limit for this call", timeout=None).content == "no limit for this call"
    with pytest.raises(ConfigurationError, match="timeout must be a positive number of seconds or None"):
        ChatClient(endpoint.url, api_key=API_KEY, timeout=float("nan"))


def test_default_timeout_is_50_seconds(endpoint: LocalEndpoint) -> None:
    with ChatClient(endpoint.url, api_key=API_KEY) as client:
        assert client.timeout == 50.0


# --- closed clients and event loops -------------------------------------------------------------


def test_a_closed_client_says_so(endpoint: LocalEndpoint) -> None:
    client = ChatClient(endpoint.url, api_key=API_KEY)
    client.close()
    with pytest.raises(ClientClosedError, match="has been closed"):
        client.chat("hi")

    async def main(driver: Any) -> None:
        aclient = AsyncChatClient(endpoint.url, api_key=API_KEY, driver=driver)
        await aclient.aclose()
        with pytest.raises(ClientClosedError, match="has been closed"):
            await aclient.chat("hi")

    for driver in ("httpx2", "aiohttp"):
        asyncio.run(main(driver))
    assert endpoint.requests == []


@pytest.mark.parametrize("driver", ["httpx2", "aiohttp"])
def test_an_async_client_survives_a_second_asyncio_run(endpoint: LocalEndpoint, driver: Any) -> None:
    client = AsyncChatClient(endpoint.url, api_key=API_KEY, driver=driver)

    async def ask(text: str) -> str:
        return (await client.chat(text)).content

    assert asyncio.run(ask("one")) == "one"
    assert asyncio.run(ask("two")) == "two"  # a new loop: a fresh pool, not "Event loop is closed"
    asyncio.run(client.aclose())


def test_a_callers_async_httpx_client_on_another_loop_is_explained(endpoint: LocalEndpoint) -> None:
    http = httpx.AsyncClient()
    client = AsyncChatClient(endpoint.url, api_key=API_KEY, http_client=http)

    async def ask() -> str:
        return (await client.chat("hi")).content

    assert asyncio.run(ask()) == "hi"
    with pytest.raises(ClientClosedError, match="cannot move between loops"):
        asyncio.run(ask())


# --- what users pass -----------------------------------------------------------------------------


def test_a_message_with_openai_style_tool_call_dicts_is_converted() -> None:
    wire = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    message = Message("assistant", None, tool_calls=[wire])  # type: ignore[list-item]
    assert message.tool_calls == (ToolCall("c1", "f", '{"x":1}'),)
    with pytest.raises(InvalidRequestError, match="tool calls must look like"):
        Message("assistant", None, tool_calls=[{"id": "c1"}])  # type: ignore[list-item]
    with pytest.raises(InvalidRequestError, match="tool_calls must be a list"):
        Message("assistant", None, tool_calls="f")  # type: ignore[arg-type]


# --- errors that say what to fix ----------------------------------------------------------------


@mode_param
def test_a_401_without_any_key_says_how_to_give_one(mode: str) -> None:
    with LocalEndpoint(api_key=API_KEY) as endpoint, pytest.raises(AuthenticationError) as info:
        with_client(mode, endpoint.url, lambda c: c.chat("hi"), lambda c: c.chat("hi"), api_key=None)
    assert "api_key=..., set AZUREML_ENDPOINT_API_KEY, or pass credential=..." in str(info.value)


@mode_param
def test_a_404_names_the_path(endpoint: LocalEndpoint, mode: str) -> None:
    url = endpoint.url.replace("/v1/chat/completions", "/wrong/v1/chat/completions")
    with pytest.raises(NotFoundError, match=r"POST /wrong/v1/chat/completions: check the URL path"):
        with_client(mode, url, lambda c: c.chat("hi"), lambda c: c.chat("hi"))


def test_a_408_on_a_managed_online_endpoint_is_not_retried_and_names_the_setting(dedicated: LocalEndpoint) -> None:
    dedicated.add_fault(Fault(408, times=3))
    with (
        ChatClient(dedicated.url, api_key=API_KEY, retry_policy=FAST_RETRIES) as client,
        pytest.raises(ServerError, match=r"request_settings\.request_timeout_ms"),
    ):
        client.chat("hi")
    assert len(dedicated.requests) == 1


def test_redaction_replaces_whole_keys_only() -> None:
    key = "gs"  # a short key: "logs" must stay "logs"
    with LocalEndpoint(api_key=key) as keyed:
        keyed.add_fault(Fault(500, body={"error": {"message": "Check the logs; your key was gs and Bearer gs"}}))
        with ChatClient(keyed.url, api_key=key, max_retries=0) as client, pytest.raises(ServerError) as info:
            client.chat("hi")
    assert "Check the logs; your key was [redacted] and Bearer [redacted]" in str(info.value)


def test_a_rotated_azure_key_credential_is_used_from_the_next_request(endpoint: LocalEndpoint) -> None:
    from azure.core.credentials import AzureKeyCredential

    credential = AzureKeyCredential("old-key")
    with ChatClient(endpoint.url, api_key=credential, max_retries=0) as client:
        with pytest.raises(AuthenticationError):
            client.chat("hi")
        assert endpoint.requests[-1].headers["api-key"] == "old-key"
        credential.update(API_KEY)
        assert client.chat("hi").content == "hi"
    headers = endpoint.requests[-1].headers
    assert (headers["api-key"], headers["authorization"]) == (API_KEY, f"Bearer {API_KEY}")


# --- same answer on every path ------------------------------------------------------------------


@mode_param
def test_think_tags_give_the_same_reply_to_chat_and_stream(endpoint: LocalEndpoint, mode: str) -> None:
    text = "<think>weigh 2 and 2</think>\n\nFour."
    endpoint.add_fault(Fault(200, body={"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}))
    pieces = [{"content": "<thi"}, {"content": "nk>weigh 2 "}, {"content": "and 2</th"}, {"content": "ink>\n\nFo"}]
    endpoint.add_fault(Fault(200, body=sse(*pieces, {"content": "ur."}), content_type=SSE))

    def sync_action(client: ChatClient) -> Any:
        whole = client.chat("q")
        with client.stream("q") as stream:
            chunks = list(stream)
        return whole, chunks, stream.response

    async def async_action(client: AsyncChatClient) -> Any:
        whole = await client.chat("q")
        async with client.stream("q") as stream:
            chunks = [chunk async for chunk in stream]
        return whole, chunks, stream.response

    whole, chunks, streamed = with_client(mode, endpoint.url, sync_action, async_action)
    assert (whole.content, whole.reasoning_content) == ("Four.", "weigh 2 and 2")
    assert (streamed.content, streamed.reasoning_content) == ("Four.", "weigh 2 and 2")
    assert "".join(chunk.content for chunk in chunks) == "Four."
    assert "".join(chunk.reasoning_content for chunk in chunks) == "weigh 2 and 2"


@mode_param
def test_a_stream_with_no_events_says_so(endpoint: LocalEndpoint, mode: str) -> None:
    endpoint.add_fault(Fault(200, body=b"", content_type=SSE))

    def sync_action(client: ChatClient) -> Any:
        with client.stream("q") as stream:
            return list(stream)

    async def async_action(client: AsyncChatClient) -> Any:
        async with client.stream("q") as stream:
            return [chunk async for chunk in stream]

    with pytest.raises(StreamError, match="no events received"):
        with_client(mode, endpoint.url, sync_action, async_action)


def test_the_aiohttp_driver_honours_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalEndpoint(api_key=API_KEY) as target, LocalEndpoint(api_key=API_KEY) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        async def main() -> str:
            async with AsyncChatClient(target.url, api_key=API_KEY, driver="aiohttp", max_retries=0) as client:
                return (await client.chat("via proxy")).content  # the stand-in answers instead of forwarding

        assert anyio.run(main) == "via proxy"
        assert target.requests == [] and len(proxy.requests) == 1

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")

        async def direct() -> str:
            async with AsyncChatClient(target.url, api_key=API_KEY, driver="aiohttp") as client:
                return (await client.chat("direct")).content

        assert anyio.run(direct) == "direct"
