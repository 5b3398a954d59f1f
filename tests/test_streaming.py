"""Streaming over real HTTP for both clients: SSE decoding at every cut, trickled bytes,
early exit and the connection pool, mid-stream errors, usage chunks, tool-call fragments."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from support import API_KEY, MODES, mode_param, settings, stream, with_client

import azml_chat._stream
from azml_chat import (
    AsyncChatClient,
    ChatClient,
    ChatResponse,
    StreamError,
    ToolCall,
)
from azml_chat._sse import ServerSentEvent, SSEDecoder
from azml_chat._stream import StreamState
from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, ScriptedReply

TOOL_CALLS = [
    {"id": "call_a", "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": "C"}'}},
    {"id": "call_b", "function": {"name": "get_time", "arguments": '{"zone": "Europe/Oslo"}'}},
]
RICH = ScriptedReply(
    content="Let me check the weather for you.",
    reasoning_content="The user wants weather.",
    tool_calls=TOOL_CALLS,
    usage={"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33},
)


def rich_responder(turn: ChatTurn) -> ScriptedReply:
    return RICH


@pytest.fixture
def rich() -> Iterator[LocalEndpoint]:
    """A serverless endpoint whose model answers with reasoning, text and two tool calls."""
    with LocalEndpoint(api_key=API_KEY, responder=rich_responder) as endpoint:
        yield endpoint


def wait_for(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def captured_sse(endpoint: LocalEndpoint) -> bytes:
    """The exact SSE body the endpoint sends for a streamed call with usage."""
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "stream_options": {"include_usage": True}}
    headers = {"api-key": API_KEY, "extra-parameters": "pass-through"}
    response = httpx.post(endpoint.chat_url, json=body, headers=headers, timeout=5)
    assert response.headers["content-type"].startswith("text/event-stream")
    return response.content


def assemble(events: list[ServerSentEvent]) -> tuple[list[Any], ChatResponse]:
    state = StreamState("rid")
    chunks = []
    for event in events:
        chunk = state.handle(event)
        if state.done:
            break
        if chunk is not None:
            chunks.append((chunk.content, chunk.reasoning_content, chunk.tool_calls, chunk.finish_reason, chunk.usage))
    assert state.done
    return chunks, state.response(0.0)


# --- the decoder over a captured stream, cut at every byte boundary -------------------------------


def test_captured_stream_parses_the_same_at_every_cut(rich: LocalEndpoint) -> None:
    data = captured_sse(rich)
    reference = SSEDecoder().feed(data)
    assert reference[-1] == ServerSentEvent("message", b"[DONE]")
    chunks, response = assemble(reference)
    assert response.content == RICH.content
    assert response.reasoning_content == RICH.reasoning_content
    assert [(c.id, c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("call_a", "get_weather", {"city": "Oslo", "unit": "C"}),
        ("call_b", "get_time", {"zone": "Europe/Oslo"}),
    ]
    assert response.usage is not None
    assert response.usage.total_tokens == 33
    for variant in (data, data.replace(b"\n", b"\r\n"), data.replace(b"\n", b"\r")):
        for cut in range(len(variant) + 1):
            decoder = SSEDecoder()
            events = decoder.feed(variant[:cut]) + decoder.feed(variant[cut:])
            assert events == reference, cut
            assert not decoder.pending
        decoder = SSEDecoder()
        one_by_one = [event for i in range(len(variant)) for event in decoder.feed(variant[i : i + 1])]
        assert one_by_one == reference
    assert assemble(one_by_one) == (chunks, response)


def test_three_way_cuts_around_every_event_boundary(rich: LocalEndpoint) -> None:
    data = captured_sse(rich).replace(b"\n", b"\r\n")
    reference = SSEDecoder().feed(data)
    boundaries = [i for i in range(len(data)) if data[i : i + 4] == b"\r\n\r\n"]
    for boundary in boundaries:
        for first in range(max(boundary - 2, 0), boundary + 5):
            for second in range(first, min(first + 4, len(data)) + 1):
                decoder = SSEDecoder()
                events = decoder.feed(data[:first]) + decoder.feed(data[first:second]) + decoder.feed(data[second:])
                assert events == reference, (first, second)


SHORT = ScriptedReply(content="Hi there", tool_calls=[{"id": "c", "function": {"name": "f", "arguments": '{"a":1}'}}])


class CountingDecoder(SSEDecoder):
    feeds: list[int] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        CountingDecoder.feeds.append(len(chunk))
        return super().feed(chunk)


@mode_param
def test_trickled_one_byte_at_a_time_over_http(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azml_chat._stream, "SSEDecoder", CountingDecoder)
    with LocalEndpoint(api_key=API_KEY, responder=lambda turn: SHORT, model_name="m") as short:
        whole_chunks, whole = stream(mode, short.url, "hi", stream_options={"include_usage": True})
        CountingDecoder.feeds = []
        short.add_fault(Fault(delay_between_chunks=1e-6, chunk_size=1))
        chunks, response = stream(mode, short.url, "hi", stream_options={"include_usage": True})
        assert not short.pending_faults  # the trickle fault was really used
    feeds = CountingDecoder.feeds
    assert len(feeds) > 200, feeds  # the bytes really arrived in pieces
    assert sum(feeds) / len(feeds) < 4, feeds
    assert [(c.content, c.reasoning_content, c.tool_calls, c.finish_reason, c.usage) for c in chunks] == [
        (c.content, c.reasoning_content, c.tool_calls, c.finish_reason, c.usage) for c in whole_chunks
    ]
    assert response is not None
    assert whole is not None
    assert (response.message, response.usage, response.finish_reason) == (whole.message, whole.usage, "tool_calls")
    assert response.content == "Hi there"
    assert response.tool_calls == (ToolCall("c", "f", '{"a":1}'),)


# --- leaving early, connections ---------------------------------------------------------------------


@mode_param
def test_early_exit_closes_the_response_and_frees_the_pool_slot(endpoint: LocalEndpoint, mode: str) -> None:
    text = " ".join(f"word{i}" for i in range(200))
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(5.0, pool=1.0)  # a leaked connection would make the next call time out here

    def sync_action(client: ChatClient) -> list[Any]:
        seen = []
        for _ in range(3):
            with client.stream(text) as s:
                for chunk in s:
                    if chunk.content:
                        break
            seen.append(s.response)
            with pytest.raises(StreamError, match="closed or failed before it ended"):
                s.get_final_response()
        seen.append(client.chat("after").content)
        return seen

    async def async_action(client: AsyncChatClient) -> list[Any]:
        seen = []
        for _ in range(3):
            async with client.stream(text) as s:
                async for chunk in s:
                    if chunk.content:
                        break
            seen.append(s.response)
            with pytest.raises(StreamError, match="closed or failed before it ended"):
                await s.get_final_response()
        seen.append((await client.chat("after")).content)
        return seen

    if mode == "sync":
        with httpx.Client(limits=limits, timeout=timeout) as http:
            seen = with_client(mode, endpoint.url, sync_action, async_action, http_client=http)
    else:

        async def main() -> list[Any]:
            http = httpx.AsyncClient(limits=limits, timeout=timeout)
            async with http, AsyncChatClient(endpoint.url, http_client=http, **settings()) as client:
                return await async_action(client)

        seen = anyio.run(main, backend=mode)
    assert seen == [None, None, None, "after"]
    wait_for(lambda: endpoint.open_connections == 0)  # the server saw each early-closed connection end
    assert len(endpoint.requests) == 4


@mode_param
def test_a_finished_stream_returns_its_connection_for_reuse(endpoint: LocalEndpoint, mode: str) -> None:
    def sync_action(client: ChatClient) -> list[str]:
        texts = []
        for word in ("one", "two", "three"):
            with client.stream(f"say {word}") as s:
                texts.append(s.get_final_response().content)
        texts.append(client.chat("done").content)
        return texts

    async def async_action(client: AsyncChatClient) -> list[str]:
        texts = []
        for word in ("one", "two", "three"):
            async with client.stream(f"say {word}") as s:
                texts.append((await s.get_final_response()).content)
        texts.append((await client.chat("done")).content)
        return texts

    assert with_client(mode, endpoint.url, sync_action, async_action) == ["say one", "say two", "say three", "done"]
    assert endpoint.total_connections == 1  # every call after the first reused the connection


# --- errors in and around the stream ----------------------------------------------------------------


@mode_param
def test_error_event_mid_stream_raises_stream_error(endpoint: LocalEndpoint, mode: str) -> None:
    endpoint.add_fault(Fault(stream_error={"error": {"code": "content_filter", "message": "output blocked"}}))
    seen: list[str] = []

    def sync_action(client: ChatClient) -> None:
        with client.stream("one two three four") as s:
            for chunk in s:
                seen.append(chunk.content)

    async def async_action(client: AsyncChatClient) -> None:
        async with client.stream("one two three four") as s:
            async for chunk in s:
                seen.append(chunk.content)

    with pytest.raises(StreamError, match="output blocked") as caught:
        with_client(mode, endpoint.url, sync_action, async_action)
    assert "".join(seen) == "one "  # the chunks before the error were delivered
    assert caught.value.body == {"error": {"code": "content_filter", "message": "output blocked"}}
    assert caught.value.request_id


@mode_param
def test_connection_dropped_mid_stream_is_an_error(endpoint: LocalEndpoint, mode: str) -> None:
    endpoint.add_fault(Fault(drop="mid_stream"))
    with pytest.raises(StreamError, match=r"broke before \[DONE\]"):
        stream(mode, endpoint.url, "one two three four")
    assert len(endpoint.requests) == 1  # never retried after the first chunk


@mode_param
def test_clean_close_before_done_is_an_error(endpoint: LocalEndpoint, mode: str) -> None:
    body = b'data: {"choices": [{"index": 0, "delta": {"content": "partial"}}]}\n\n'
    endpoint.add_fault(Fault(body=body, content_type="text/event-stream"))
    with pytest.raises(StreamError, match=r"ended before \[DONE\]"):
        stream(mode, endpoint.url, "x")


@mode_param
def test_a_compressed_event_stream_is_decoded(rich: LocalEndpoint, mode: str) -> None:
    body = gzip.compress(captured_sse(rich))
    rich.add_fault(Fault(body=body, content_type="text/event-stream", headers={"content-encoding": "gzip"}))
    _, response = stream(mode, rich.url, "x")
    assert response is not None
    assert response.content == RICH.content
    assert len(response.tool_calls) == 2


@mode_param
def test_failure_before_the_first_chunk_is_retried(endpoint: LocalEndpoint, mode: str) -> None:
    endpoint.add_fault(Fault(status=503))
    _chunks, response = stream(mode, endpoint.url, "hello again")
    assert response is not None
    assert response.content == "hello again"
    assert len(endpoint.requests) == 2


# --- usage, tool calls, non-streaming routes ------------------------------------------------------


@mode_param
def test_usage_only_last_chunk(endpoint: LocalEndpoint, mode: str) -> None:
    chunks, response = stream(mode, endpoint.url, "count these words", stream_options={"include_usage": True})
    request = endpoint.requests[-1]
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    assert request.headers["extra-parameters"] == "pass-through"
    assert request.headers["accept"] == "text/event-stream"
    last = chunks[-1]
    assert (last.content, last.tool_calls, last.raw["choices"]) == ("", (), [])
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 3)
    assert response is not None
    assert response.usage == last.usage
    assert response.finish_reason == "stop"
    chunks, response = stream(mode, endpoint.url, "no usage please")
    assert "extra-parameters" not in endpoint.requests[-1].headers
    assert response is not None
    assert response.usage is None
    assert all(c.usage is None for c in chunks)


@mode_param
def test_tool_call_fragments_are_assembled(rich: LocalEndpoint, mode: str) -> None:
    chunks, response = stream(mode, rich.url, "weather?", tools=[{"type": "function", "function": {"name": "x"}}])
    fragments = [delta for chunk in chunks for delta in chunk.tool_calls]
    assert len([f for f in fragments if f.index == 0]) >= 3  # header + 2-3 argument pieces
    assert "".join(f.arguments for f in fragments if f.index == 1) == TOOL_CALLS[1]["function"]["arguments"]
    assert response is not None
    assert response.tool_calls == (
        ToolCall("call_a", "get_weather", '{"city": "Oslo", "unit": "C"}'),
        ToolCall("call_b", "get_time", '{"zone": "Europe/Oslo"}'),
    )
    assert response.finish_reason == "tool_calls"
    assert response.content == RICH.content
    assert response.reasoning_content == RICH.reasoning_content
    assert "".join(c.reasoning_content for c in chunks) == RICH.reasoning_content


@mode_param
def test_dedicated_endpoint_streams_the_whole_reply_as_one_chunk(dedicated: LocalEndpoint, mode: str) -> None:
    chunks, response = stream(mode, dedicated.url, "a whole reply")
    assert [c.content for c in chunks] == ["a whole reply"]
    assert response is not None
    assert response.content == "a whole reply"
    assert response.raw == {"output": "a whole reply"}
    assert "stream" not in dedicated.requests[-1].json["input_data"]["parameters"]


@mode_param
def test_a_json_reply_to_a_stream_request_becomes_one_chunk(endpoint: LocalEndpoint, mode: str) -> None:
    completion = {
        "id": "cmpl-1",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "not streamed"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    endpoint.add_fault(Fault(body=completion))
    chunks, response = stream(mode, endpoint.url, "x")
    assert [(c.content, c.finish_reason) for c in chunks] == [("not streamed", "stop")]
    assert response is not None
    assert response.id == "cmpl-1"
    assert response.usage is not None


# --- StreamState details (no I/O) -----------------------------------------------------------------


def event(data: bytes, kind: str = "message") -> ServerSentEvent:
    return ServerSentEvent(kind, data)


def test_error_object_in_data_and_null_error_fields() -> None:
    state = StreamState(None)
    ok = state.handle(event(b'{"error": null, "choices": [{"index": 0, "delta": {"content": "a"}}]}'))
    assert ok is not None
    assert ok.content == "a"
    with pytest.raises(StreamError, match="overloaded"):
        state.handle(event(b'{"error": {"code": "429", "message": "overloaded"}}'))
    with pytest.raises(StreamError, match="plain text failure"):
        StreamState(None).handle(event(b"plain text failure", "error"))


def test_other_events_and_empty_data_are_skipped() -> None:
    state = StreamState(None)
    assert state.handle(event(b'{"whatever": 1}', "ping")) is None
    assert state.handle(event(b"")) is None
    assert not state.done
    assert state.handle(event(b"[DONE]")) is None
    assert state.done


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[1, 2]", b'{"choices": [5]}', b'{"choices": [{"delta": "x"}]}', b'{"choices": {"a": 1}}'],
)
def test_malformed_chunks_raise_stream_error(data: bytes) -> None:
    with pytest.raises(StreamError):
        StreamState(None).handle(event(data))
    bad_calls = b'{"choices": [{"delta": {"tool_calls": ["x"]}}]}'
    with pytest.raises(StreamError, match="malformed tool calls"):
        StreamState(None).handle(event(bad_calls))


def test_tool_call_fragments_without_index() -> None:
    state = StreamState(None)
    for data in (
        b'{"choices": [{"delta": {"tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{\\"a\\""}}]}}]}',
        b'{"choices": [{"delta": {"tool_calls": [{"function": {"arguments": ": 1}"}}]}}]}',
        b'{"choices": [{"delta": {"tool_calls": [{"id": "c2", "function": {"name": "g", "arguments": "{}"}}]}}]}',
    ):
        state.handle(event(data))
    state.handle(event(b"[DONE]"))
    assert state.response(0.0).tool_calls == (ToolCall("c1", "f", '{"a": 1}'), ToolCall("c2", "g", "{}"))


def test_stream_is_not_sent_until_iterated(endpoint: LocalEndpoint) -> None:
    with ChatClient(endpoint.url, **settings()) as client, client.stream("never sent"):
        pass
    assert endpoint.requests == []


@pytest.mark.parametrize("mode", MODES[1:])
def test_async_stream_runs_on_both_backends_in_parallel(endpoint: LocalEndpoint, mode: str) -> None:
    async def main() -> list[str]:
        results: list[str] = []
        async with AsyncChatClient(endpoint.url, **settings()) as client:

            async def one(i: int) -> None:
                async with client.stream(f"parallel {i}") as s:
                    results.append((await s.get_final_response()).content)

            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i)
        return sorted(results)

    assert anyio.run(main, backend=mode) == sorted(f"parallel {i}" for i in range(8))
