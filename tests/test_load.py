"""Load: many calls at once through a bounded pool; every reply belongs to its request.

The endpoint echoes each prompt after a delay that depends on the prompt, so replies come
back out of order; a reply matched to the wrong request, a lost reply or a retry shows up
as a mismatch. The pool is bounded, and the server counts the connections it accepted, so
the bound is checked too. Everything runs under a hard time limit.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx
import pytest
from support import API_KEY, FAST_RETRIES, TLS_CONTEXT, assert_pool_idle

from azml_chat import AsyncChatClient, ChatClient
from azml_chat.testing import ChatTurn, LocalEndpoint, echo_responder

CALLS = 1000
POOL = 50
THREADS = 16
CALLS_PER_THREAD = 40
TIME_LIMIT = 60.0  # seconds; a run takes a few on 2 cores


async def shuffling_echo(turn: ChatTurn) -> str:
    """Echo the prompt after 0-9 ms chosen by the prompt, so replies finish out of order."""
    text = echo_responder(turn)
    await anyio.sleep((zlib.crc32(text.encode()) % 10) / 1000)
    return text


@pytest.fixture
def load_endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(api_key=API_KEY, responder=shuffling_echo) as endpoint:
        yield endpoint


def prompt(i: int) -> str:
    return f"request {i}: {'x' * (i % 37)} \u00e9\U0001f600 #{i}"  # distinct lengths and non-ASCII text


@contextlib.contextmanager
def peak_connections(endpoint: LocalEndpoint) -> Iterator[Callable[[], int]]:
    """Sample how many connections the server holds open at once (every 2 ms, from a thread)."""
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.002):
            peak = max(peak, endpoint.open_connections)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: peak
    finally:
        done.set()
        sampler.join()


def wait_until_closed(endpoint: LocalEndpoint) -> None:
    """After the client closed, the server sees every connection closed too (no socket left open)."""
    deadline = time.monotonic() + 5
    while endpoint.open_connections:
        assert time.monotonic() < deadline, f"{endpoint.open_connections} connection(s) still open"
        time.sleep(0.01)


def check_server_side(endpoint: LocalEndpoint, sent: list[str], peak: int, pool: int) -> None:
    wait_until_closed(endpoint)
    assert 0 < peak <= pool  # the pool bound held
    requests = endpoint.requests
    assert len(requests) == len(sent)  # nothing lost, nothing retried
    received = sorted(r.json["messages"][-1]["content"] for r in requests)
    assert received == sorted(sent)  # each prompt arrived exactly once
    client_ids = {r.headers["x-ms-client-request-id"] for r in requests}
    assert len(client_ids) == len(sent)  # every call has its own client request id


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_concurrent_chats_through_a_bounded_pool(load_endpoint: LocalEndpoint, anyio_backend: str) -> None:
    calls = CALLS if anyio_backend == "asyncio" else CALLS // 4  # trio: the same checks, less time
    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    replies: dict[int, tuple[str, str | None]] = {}

    async def one(client: AsyncChatClient, i: int) -> None:
        reply = await client.chat(prompt(i))
        replies[i] = (reply.content, reply.request_id)

    started = time.monotonic()
    with peak_connections(load_endpoint) as peak, anyio.fail_after(TIME_LIMIT):
        async with (
            httpx.AsyncClient(verify=TLS_CONTEXT, limits=limits) as http,
            AsyncChatClient(
                load_endpoint.url, api_key=API_KEY, retry_policy=FAST_RETRIES, http_client=http, max_concurrency=POOL
            ) as client,
        ):
            async with anyio.create_task_group() as tg:
                for i in range(calls):
                    tg.start_soon(one, client, i)
            assert_pool_idle(client)
    elapsed = time.monotonic() - started

    assert sorted(replies) == list(range(calls))
    mismatched = [i for i, (content, _) in replies.items() if content != prompt(i)]
    assert not mismatched, f"{len(mismatched)} replies crossed, e.g. {mismatched[:5]}"
    assert len({request_id for _, request_id in replies.values()}) == calls  # one server request id each
    check_server_side(load_endpoint, [prompt(i) for i in range(calls)], peak(), POOL)
    print(f"{calls} concurrent chats on {anyio_backend} through {POOL} connections: {elapsed:.2f} s")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_concurrent_streams_through_a_bounded_pool(load_endpoint: LocalEndpoint) -> None:
    calls, pool = 200, 20
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    replies: dict[int, str] = {}

    async def one(client: AsyncChatClient, i: int) -> None:
        async with client.stream(prompt(i)) as stream:
            pieces = [chunk.content async for chunk in stream]
        final = stream.response
        assert final is not None
        assert final.content == "".join(pieces)
        replies[i] = final.content

    with peak_connections(load_endpoint) as peak, anyio.fail_after(TIME_LIMIT):
        async with (
            httpx.AsyncClient(verify=TLS_CONTEXT, limits=limits) as http,
            AsyncChatClient(
                load_endpoint.url, api_key=API_KEY, retry_policy=FAST_RETRIES, http_client=http, max_concurrency=POOL
            ) as client,
        ):
            async with anyio.create_task_group() as tg:
                for i in range(calls):
                    tg.start_soon(one, client, i)
            assert_pool_idle(client)

    assert replies == {i: prompt(i) for i in range(calls)}
    check_server_side(load_endpoint, [prompt(i) for i in range(calls)], peak(), pool)


def test_sync_client_shared_by_threads(load_endpoint: LocalEndpoint) -> None:
    """One ChatClient used from 16 threads at once through a pool of 8 connections.

    ``max_concurrency`` makes the threads queue in the client, not inside httpcore's sync pool:
    httpcore 1.0.9 can close a connection it already handed to a queued request
    (encode/httpcore#1110), and the call then fails with EBADF or hangs until its read time-out.
    """
    pool = THREADS // 2
    barrier = threading.Barrier(THREADS)
    results: dict[int, tuple[str, str]] = {}
    lock = threading.Lock()

    def worker(client: ChatClient, t: int) -> None:
        barrier.wait(timeout=10)  # all threads start together
        for k in range(CALLS_PER_THREAD):
            i = t * CALLS_PER_THREAD + k
            text = prompt(i)
            if k % 5 == 0:
                with client.stream(text) as stream:
                    content = stream.get_final_response().content
            else:
                content = client.chat(text).content
            with lock:
                results[i] = (text, content)

    total = THREADS * CALLS_PER_THREAD
    started = time.monotonic()
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    with (
        peak_connections(load_endpoint) as peak,
        httpx.Client(verify=TLS_CONTEXT, limits=limits) as http,
        ChatClient(
            load_endpoint.url, api_key=API_KEY, retry_policy=FAST_RETRIES, http_client=http, max_concurrency=pool
        ) as client,
        ThreadPoolExecutor(THREADS) as executor,
    ):
        futures = [executor.submit(worker, client, t) for t in range(THREADS)]
        for future in futures:
            future.result(timeout=TIME_LIMIT)
        assert_pool_idle(client)
    elapsed = time.monotonic() - started

    assert len(results) == total
    crossed = [i for i, (sent, got) in results.items() if sent != got]
    assert not crossed, f"{len(crossed)} replies crossed between threads, e.g. {crossed[:5]}"
    check_server_side(load_endpoint, [prompt(i) for i in range(total)], peak(), pool)
    assert elapsed < TIME_LIMIT
    print(f"{total} calls from {THREADS} threads through {pool} connections: {elapsed:.2f} s")
