"""Cancellation on asyncio and trio: no connection leaks, and the client works afterwards.

A call is cancelled during connect, while waiting for headers, mid-body, mid-stream and during
a backoff sleep. The cancel is triggered by what the test observes (the server recorded the
request, the first body bytes arrived, the retry wait was decided), not by guessing with
timers, so each test cancels exactly in the phase it names.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from support import API_KEY, TLS_CONTEXT, assert_pool_idle

from azml_chat import AsyncChatClient, AttemptInfo, ChatHooks, RetryPolicy
from azml_chat.testing import Fault, LocalEndpoint

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])]

POLICY = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, max_retry_after=60.0)
SLOW = 10.0  # seconds a fault stalls; every test cancels long before


def make_client(url: str, responses: list[httpx.Response] | None = None) -> AsyncChatClient:
    async def record(response: httpx.Response) -> None:
        if responses is not None:
            responses.append(response)

    http = httpx.AsyncClient(verify=TLS_CONTEXT, event_hooks={"response": [record]})
    return AsyncChatClient(url, api_key=API_KEY, retry_policy=POLICY, http_client=http)


async def close(client: AsyncChatClient) -> None:
    await client._transport.client.aclose()


async def cancel_when(scope: anyio.CancelScope, condition: Callable[[], bool]) -> None:
    """Cancel ``scope`` as soon as ``condition()`` holds (polled every few milliseconds)."""
    with anyio.fail_after(5):
        while not condition():  # noqa: ASYNC110 - the state lives in the endpoint's thread: poll it
            await anyio.sleep(0.002)
    scope.cancel()


async def run_cancelled(call: Callable[[], Any], condition: Callable[[], bool]) -> float:
    """Run ``call()`` and cancel it once ``condition()`` holds; return the seconds it took."""
    started = time.monotonic()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_when, scope, condition)
            await call()
            pytest.fail("the call finished before it was cancelled")
    assert scope.cancelled_caught
    return time.monotonic() - started


async def works_afterwards(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    """No connection is left checked out, and the same client still answers (twice, reusing the pool)."""
    assert_pool_idle(client)
    for text in ("still alive", "and again"):
        assert (await client.chat(text)).content == text
        assert_pool_idle(client)
    async with client.stream("streaming too") as stream:
        assert (await stream.get_final_response()).content == "streaming too"
    assert_pool_idle(client)


@pytest.fixture
def blackhole() -> Iterator[tuple[int, Callable[[], None]]]:
    """A port whose connects hang (a full listen backlog), and a function that frees it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())  # fills the backlog: later SYNs are dropped
    sockets = [filler, listener]

    def release() -> None:
        while sockets:
            sockets.pop().close()

    yield listener.getsockname()[1], release
    release()


async def test_cancel_during_connect(blackhole: tuple[int, Callable[[], None]]) -> None:
    port, release = blackhole
    client = make_client(f"http://127.0.0.1:{port}/v1/chat/completions")
    try:
        started = time.monotonic()
        elapsed = await run_cancelled(lambda: client.chat("hi"), lambda: time.monotonic() - started > 0.2)
        assert elapsed < 3
        assert_pool_idle(client)
        assert all(conn.is_closed() for conn in client._transport.client._transport._pool.connections)  # type: ignore[attr-defined]
        release()
        with LocalEndpoint(api_key=API_KEY, port=port) as endpoint:  # the same address now answers
            await works_afterwards(client, endpoint)
    finally:
        await close(client)


@pytest.mark.parametrize("method", ["chat", "stream"])
async def test_cancel_while_waiting_for_headers(endpoint: LocalEndpoint, method: str) -> None:
    endpoint.add_fault(Fault(delay_before_headers=SLOW))
    client = make_client(endpoint.url)

    async def call() -> None:
        if method == "chat":
            await client.chat("hi")
        else:
            async with client.stream("hi") as stream:
                async for _ in stream:
                    pass

    try:
        elapsed = await run_cancelled(call, lambda: len(endpoint.requests) == 1)
        assert elapsed < SLOW / 2
        await works_afterwards(client, endpoint)
    finally:
        await close(client)


async def test_cancel_mid_body(endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(delay_between_chunks=0.1, chunk_size=16))  # ~2 s for the whole reply
    responses: list[httpx.Response] = []
    client = make_client(endpoint.url, responses)
    try:
        await run_cancelled(
            lambda: client.chat("a reply long enough to trickle"),
            lambda: bool(responses) and responses[0].num_bytes_downloaded > 0,
        )
        assert 0 < responses[0].num_bytes_downloaded < 200  # cancelled with most of the body unread
        assert responses[0].is_closed
        await works_afterwards(client, endpoint)
    finally:
        await close(client)


async def test_cancel_mid_stream(endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(delay_between_chunks=0.2, chunk_size=64))
    client = make_client(endpoint.url)
    seen: list[str] = []
    try:
        with anyio.CancelScope() as scope:
            async with client.stream("one two three four five six") as stream:
                async for chunk in stream:
                    seen.append(chunk.content)
                    if chunk.content:
                        scope.cancel()  # the next read of the stream is cancelled
        assert scope.cancelled_caught
        assert "".join(seen) == "one "
        assert stream.response is None  # the stream did not pretend to finish
        await works_afterwards(client, endpoint)
    finally:
        await close(client)


@pytest.mark.parametrize("method", ["chat", "stream"])
async def test_cancel_during_backoff_sleep(endpoint: LocalEndpoint, method: str) -> None:
    endpoint.add_fault(Fault(503, headers={"retry-after-ms": "30000"}))
    decided: list[float | None] = []

    class Recorder(ChatHooks):
        def on_attempt(self, attempt: AttemptInfo) -> None:  # told before the wait is slept
            decided.append(attempt.retry_in)

    http = httpx.AsyncClient(verify=TLS_CONTEXT)
    client = AsyncChatClient(endpoint.url, api_key=API_KEY, retry_policy=POLICY, http_client=http, hooks=[Recorder()])

    async def call() -> None:
        if method == "chat":
            await client.chat("hi")
        else:
            async with client.stream("hi") as stream:
                async for _ in stream:
                    pass

    try:
        elapsed = await run_cancelled(call, lambda: bool(decided))
        assert decided == [30.0]  # the client was about to sleep 30 s ...
        assert elapsed < 5  # ... and the cancel cut the sleep short
        assert len(endpoint.requests) == 1
        await works_afterwards(client, endpoint)
    finally:
        await close(client)


async def test_cancel_many_calls_in_every_phase(endpoint: LocalEndpoint) -> None:
    """Forty calls in flight (some stalled before headers, some trickling, some streaming), then one
    cancel for all of them: the pool ends idle and the client carries on."""
    endpoint.add_fault(Fault(delay_before_headers=SLOW, times=10))
    endpoint.add_fault(Fault(delay_between_chunks=0.2, chunk_size=32, times=20))
    client = make_client(endpoint.url)

    async def one(i: int) -> None:
        if i % 2:
            await client.chat(f"call {i}")
        else:
            async with client.stream(f"call {i}") as stream:
                async for _ in stream:
                    pass

    async def all_calls() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(one, i)

    try:
        await run_cancelled(all_calls, lambda: len(endpoint.requests) >= 30)
        await works_afterwards(client, endpoint)
    finally:
        await close(client)


async def test_the_pool_check_sees_a_leak(endpoint: LocalEndpoint) -> None:
    """The helper every test relies on does fail when a response is left open."""
    client = make_client(endpoint.url)
    try:
        stream = client.stream("left open")
        iterator = stream.__aiter__()
        await iterator.__anext__()  # headers read, body not: the connection is checked out
        with pytest.raises(AssertionError, match=r"still hold a pool slot|checked out"):
            assert_pool_idle(client)
        await stream.aclose()
        assert_pool_idle(client)
    finally:
        await close(client)
