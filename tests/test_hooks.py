"""Hooks over real HTTP: every call and attempt reported, on both clients, and a failing hook is harmless."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from support import API_KEY, FAST_RETRIES, mode_param, with_client

from azml_chat import AttemptInfo, BadRequestError, CallInfo, CallResult, ChatClient, ChatHooks, ServerError
from azml_chat.hooks import add_default_hooks, default_hooks, remove_default_hooks
from azml_chat.testing import Fault, LocalEndpoint


class Recorder(ChatHooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_call_start(self, call: CallInfo) -> None:
        self.events.append(("start", call))

    def on_attempt(self, attempt: AttemptInfo) -> None:
        self.events.append(("attempt", attempt))

    def on_call_end(self, result: CallResult) -> None:
        self.events.append(("end", result))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


class AsyncRecorder(Recorder):
    async def on_attempt(self, attempt: AttemptInfo) -> None:  # type: ignore[override]
        self.events.append(("attempt", attempt))


@mode_param
def test_a_retried_chat_is_reported_attempt_by_attempt(endpoint: LocalEndpoint, mode: str) -> None:
    endpoint.add_fault(Fault(503, headers={"retry-after-ms": "1"}))
    hooks = AsyncRecorder() if mode != "sync" else Recorder()
    reply = with_client(
        mode,
        endpoint.url,
        lambda c: c.chat("hi", temperature=0.5),
        lambda c: c.chat("hi", temperature=0.5),
        hooks=[hooks],
        model="m1",
    )
    assert hooks.kinds() == ["start", "attempt", "attempt", "end"]
    call: CallInfo = hooks.events[0][1]
    assert (call.operation, call.api_type, call.route, call.model) == ("chat", "serverless", "v1-chat", "m1")
    assert call.params["temperature"] == 0.5 and call.server_address == "127.0.0.1"
    assert call.messages[0].content == "hi"
    first, second = hooks.events[1][1], hooks.events[2][1]
    assert (first.attempt, first.status_code, first.retry_in) == (0, 503, 0.001)
    assert isinstance(first.error, ServerError)
    assert (second.attempt, second.status_code, second.error, second.retry_in) == (1, 200, None, None)
    assert second.request_id == reply.request_id
    result: CallResult = hooks.events[3][1]
    assert (result.response, result.error, result.attempts, result.closed_early) == (reply, None, 2, False)
    assert all(str(API_KEY) not in repr(event) for _, event in hooks.events)


@mode_param
def test_a_failed_call_and_a_stream_closed_early(endpoint: LocalEndpoint, mode: str) -> None:
    endpoint.add_fault(Fault(400))
    hooks = Recorder()

    def sync_action(client: Any) -> None:
        with pytest.raises(BadRequestError):
            client.chat("x")
        with client.stream("one two three four") as stream:
            next(iter(stream))

    async def async_action(client: Any) -> None:
        with pytest.raises(BadRequestError):
            await client.chat("x")
        async with client.stream("one two three four") as stream:
            await stream.__aiter__().__anext__()

    with_client(mode, endpoint.url, sync_action, async_action, hooks=[hooks])
    ends = [event for kind, event in hooks.events if kind == "end"]
    assert ends[0].error is not None and ends[0].response is None and ends[0].attempts == 1
    assert ends[1].closed_early and ends[1].error is None and ends[1].time_to_first_chunk is not None
    assert ends[1].call.operation == "stream"


def test_a_hook_that_raises_is_logged_and_ignored(endpoint: LocalEndpoint, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(ChatHooks):
        def on_call_end(self, result: CallResult) -> None:
            raise RuntimeError("meter down")

    with (
        ChatClient(endpoint.url, api_key=API_KEY, retry_policy=FAST_RETRIES, hooks=[Broken()]) as client,
        caplog.at_level(logging.WARNING, logger="azml_chat"),
    ):
        assert client.chat("still works").content == "still works"
    assert "Broken.on_call_end raised" in caplog.text


def test_default_hooks_reach_new_clients_only(endpoint: LocalEndpoint) -> None:
    hooks = Recorder()
    before = ChatClient(endpoint.url, api_key=API_KEY)
    add_default_hooks(hooks)
    try:
        assert hooks in default_hooks()
        with ChatClient(endpoint.url, api_key=API_KEY) as client:
            client.chat("hi")
        before.chat("unseen")
    finally:
        remove_default_hooks(hooks)
        before.close()
    assert hooks.kinds() == ["start", "attempt", "end"]
    with pytest.raises(TypeError, match="ChatHooks"):
        ChatClient(endpoint.url, api_key=API_KEY, hooks=[object()])  # type: ignore[list-item]


def test_the_langchain_model_passes_its_hooks(endpoint: LocalEndpoint) -> None:
    pytest.importorskip("langchain_core")
    from azml_chat.langchain import AzureMLChatOnlineEndpoint

    hooks = Recorder()
    model = AzureMLChatOnlineEndpoint(endpoint_url=endpoint.url, endpoint_api_key=API_KEY, hooks=[hooks])
    assert model.invoke("hello").content == "hello"
    assert hooks.kinds() == ["start", "attempt", "end"]
    assert model.model_copy().hooks == [hooks]
