"""``AsyncChatClient(driver="aiohttp")`` over real HTTP: the same behaviour as the httpx driver.

Key behaviours one by one (both endpoint kinds, streaming, typed errors, retries and
retry-after, connection failures, time-outs, the size limit, early exits and
cancellation releasing connections), then the whole fault matrix of ``test_faults.py``
run through the aiohttp driver. The ``runner``-based tests of ``test_client.py`` also
cover the driver (``runner`` mode ``"aiohttp"`` in conftest).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
import pytest_asyncio
from support import API_KEY, FAST_RETRIES, aiohttp_connections_in_use
from test_faults import CASES, POLICY, Case, Outcome, free_port, play_async
from test_faults import decided_waits as decided_waits  # the fixture, shared

from azml_chat import (
    APIConnectionError,
    APITimeoutError,
    AsyncChatClient,
    AuthenticationError,
    AzureMLChatError,
    BadRequestError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    StreamError,
)
from azml_chat.testing import Fault, LocalEndpoint


async def read_stream(chat_client: AsyncChatClient, text: str, **options: Any) -> str:
    async with chat_client.stream(text, **options) as stream:
        return "".join([chunk.content async for chunk in stream])


def make_client(url: str, **settings: Any) -> AsyncChatClient:
    return AsyncChatClient(url, driver="aiohttp", **{"api_key": API_KEY, "retry_policy": FAST_RETRIES, **settings})


@pytest_asyncio.fixture
async def client(endpoint: LocalEndpoint) -> AsyncIterator[AsyncChatClient]:
    async with make_client(endpoint.url) as chat_client:
        yield chat_client
        assert aiohttp_connections_in_use(chat_client) == 0


# --- replies ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_serverless_chat(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    reply = await client.chat([{"role": "system", "content": "be brief"}, "héllo wörld"], max_tokens=5)
    assert reply.content == "héllo wörld"
    assert reply.finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.total_tokens > 0
    assert reply.request_id
    (request,) = endpoint.requests
    assert request.json["max_tokens"] == 5
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["user-agent"].startswith("azml-chat/")
    assert len(request.headers["x-ms-client-request-id"]) == 36


@pytest.mark.asyncio
async def test_dedicated_chat(dedicated: LocalEndpoint) -> None:
    async with make_client(dedicated.url, deployment_name="blue") as chat_client:
        reply = await chat_client.chat("dedicated hello", max_tokens=7)
    assert reply.content == "dedicated hello"
    (request,) = dedicated.requests
    assert request.path == "/score"
    assert request.json["input_data"]["parameters"] == {"max_new_tokens": 7}
    assert request.headers["azureml-model-deployment"] == "blue"


@pytest.mark.asyncio
async def test_many_calls_reuse_one_connection(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    for i in range(5):
        assert (await client.chat(f"call {i}")).content == f"call {i}"
    assert endpoint.total_connections == 1
    assert len({r.headers["x-ms-client-request-id"] for r in endpoint.requests}) == 5


@pytest.mark.asyncio
async def test_concurrent_calls(client: AsyncChatClient) -> None:
    replies = await asyncio.gather(*(client.chat(f"task {i}") for i in range(20)))
    assert [reply.content for reply in replies] == [f"task {i}" for i in range(20)]


@pytest.mark.asyncio
async def test_model_info(client: AsyncChatClient) -> None:
    info = await client.model_info()
    assert info.model_name == "local-model"
    assert info.model_type == "chat-completion"


# --- streaming --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_stream(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    async with client.stream("one two three", stream_options={"include_usage": True}) as stream:
        chunks = [chunk async for chunk in stream]
        reply = await stream.get_final_response()
    assert "".join(chunk.content for chunk in chunks) == "one two three"
    assert len(chunks) > 3
    assert reply.content == "one two three"
    assert reply.usage is not None
    assert endpoint.requests[0].headers["accept"] == "text/event-stream"


@pytest.mark.asyncio
async def test_dedicated_stream_is_one_chunk(dedicated: LocalEndpoint) -> None:
    async with make_client(dedicated.url) as chat_client, chat_client.stream("whole reply") as stream:
        chunks = [chunk async for chunk in stream]
    assert [chunk.content for chunk in chunks] == ["whole reply"]


@pytest.mark.asyncio
async def test_leaving_a_stream_early_releases_the_connection(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(delay_between_chunks=0.05, chunk_size=30))  # the body is still arriving
    async with client.stream("a b c d e f g h") as stream:
        async for _ in stream:
            assert aiohttp_connections_in_use(client) == 1
            break
    assert aiohttp_connections_in_use(client) == 0
    assert (await client.chat("still works")).content == "still works"
    assert endpoint.total_connections == 2  # the half-read connection was closed, not reused


@pytest.mark.asyncio
async def test_stream_cut_mid_way_is_a_stream_error(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(drop="mid_stream"))
    with pytest.raises(StreamError):
        await read_stream(client, "one two three four")
    assert len(endpoint.requests) == 1  # never retried once chunks were handed out


@pytest.mark.asyncio
async def test_stream_error_event(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(stream_error={"error": {"code": "content_filter", "message": "filtered"}}))
    with pytest.raises(StreamError, match="filtered"):
        await read_stream(client, "one two three four")


# --- errors, retries, time-outs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
    ],
)
@pytest.mark.asyncio
async def test_error_statuses_are_typed(
    client: AsyncChatClient, endpoint: LocalEndpoint, status: int, error: type[AzureMLChatError]
) -> None:
    endpoint.add_fault(Fault(status, times=5))
    with pytest.raises(error) as caught:
        await client.chat("x", max_retries=0)
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert caught.value.request_id  # type: ignore[attr-defined]
    assert API_KEY not in str(caught.value)


@pytest.mark.asyncio
async def test_wrong_key(endpoint: LocalEndpoint) -> None:
    async with make_client(endpoint.url, api_key="wrong-key") as chat_client:
        with pytest.raises(AuthenticationError):
            await chat_client.chat("x")
    assert len(endpoint.requests) == 1


@pytest.mark.asyncio
async def test_retry_after_is_honoured(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(429, headers={"retry-after-ms": "150"}))
    started = time.monotonic()
    assert (await client.chat("after wait")).content == "after wait"
    assert time.monotonic() - started >= 0.15
    assert len(endpoint.requests) == 2


@pytest.mark.asyncio
async def test_retries_run_out(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(503, times=10))
    with pytest.raises(ServerError):
        await client.chat("x", max_retries=2)
    assert len(endpoint.requests) == 3


@pytest.mark.asyncio
async def test_connection_refused() -> None:
    async with make_client(f"http://127.0.0.1:{free_port()}/v1/chat/completions") as chat_client:
        with pytest.raises(APIConnectionError) as caught:
            await chat_client.chat("x", max_retries=1)
    assert type(caught.value) is APIConnectionError


@pytest.mark.asyncio
async def test_dropped_connection_is_retried(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(drop="before_headers"))
    assert (await client.chat("second try")).content == "second try"
    assert len(endpoint.requests) == 2


@pytest.mark.asyncio
async def test_dropped_connection_every_time(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(drop="before_headers", times=3))
    with pytest.raises(APIConnectionError):
        await client.chat("x", max_retries=2)
    assert len(endpoint.requests) == 3


@pytest.mark.asyncio
async def test_body_cut_short(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(drop="in_body"))
    with pytest.raises(APIConnectionError):
        await client.chat("x", max_retries=0)


@pytest.mark.asyncio
async def test_read_timeout(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(delay_before_headers=2.0))
    started = time.monotonic()
    with pytest.raises(APITimeoutError):
        await client.chat("x", timeout=0.2, max_retries=0)
    assert time.monotonic() - started < 1.5


@pytest.mark.asyncio
async def test_slow_body_hits_the_deadline(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(delay_between_chunks=0.1, chunk_size=20))
    with pytest.raises(APITimeoutError):
        await client.chat("a reply long enough to arrive in many slow pieces", timeout=0.3, max_retries=0)


@pytest.mark.asyncio
async def test_reply_size_limit(endpoint: LocalEndpoint) -> None:
    async with make_client(endpoint.url, max_response_bytes=1000) as chat_client:
        with pytest.raises(ResponseFormatError, match="max_response_bytes=1000"):
            await chat_client.chat("x" * 5000)
        assert aiohttp_connections_in_use(chat_client) == 0


@pytest.mark.asyncio
async def test_cancellation_releases_the_connection(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(delay_before_headers=5.0))
    task = asyncio.ensure_future(client.chat("never answered"))
    await asyncio.sleep(0.2)
    assert aiohttp_connections_in_use(client) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert aiohttp_connections_in_use(client) == 0
    assert (await client.chat("after cancel")).content == "after cancel"


@pytest.mark.asyncio
async def test_cancelling_a_stream_releases_the_connection(client: AsyncChatClient, endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(delay_between_chunks=0.2, chunk_size=40))
    received: list[str] = []

    async def consume() -> None:
        async with client.stream("one two three four five six") as stream:
            async for chunk in stream:
                received.append(chunk.content)

    with anyio.move_on_after(0.5):
        await consume()
    assert aiohttp_connections_in_use(client) == 0
    assert "".join(received) != "one two three four five six"


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_caller_owned_session_stays_open(endpoint: LocalEndpoint) -> None:
    async with aiohttp.ClientSession() as session:
        async with make_client(endpoint.url, http_client=session) as chat_client:
            assert (await chat_client.chat("shared")).content == "shared"
        assert not session.closed
        assert endpoint.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.asyncio
async def test_closed_client_refuses_calls(endpoint: LocalEndpoint) -> None:
    chat_client = make_client(endpoint.url)
    assert (await chat_client.chat("once")).content == "once"
    await chat_client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await chat_client.chat("again")


def test_bad_driver_settings(endpoint: LocalEndpoint) -> None:
    with pytest.raises(ConfigurationError, match="driver"):
        AsyncChatClient(endpoint.url, api_key=API_KEY, driver="requests")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"aiohttp\.ClientSession"):
        AsyncChatClient(endpoint.url, api_key=API_KEY, driver="aiohttp", http_client=object())  # type: ignore[arg-type]


def test_aiohttp_session_needs_the_aiohttp_driver(endpoint: LocalEndpoint) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ConfigurationError, match='driver="aiohttp"'):
                AsyncChatClient(endpoint.url, api_key=API_KEY, http_client=session)  # type: ignore[arg-type]

    asyncio.run(main())


def test_trio_is_refused_clearly(endpoint: LocalEndpoint) -> None:
    async def main() -> None:
        async with make_client(endpoint.url) as chat_client:
            await chat_client.chat("x")

    with pytest.raises(ConfigurationError, match="asyncio only"):
        anyio.run(main, backend="trio")


def test_missing_aiohttp_names_the_extra(monkeypatch: pytest.MonkeyPatch, endpoint: LocalEndpoint) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # makes ``import aiohttp`` fail
    monkeypatch.delitem(sys.modules, "azml_chat._transport.aiohttp", raising=False)
    with pytest.raises(ConfigurationError, match=r"azml-chat\[aiohttp\]"):
        AsyncChatClient(endpoint.url, api_key=API_KEY, driver="aiohttp")


def test_import_stays_light() -> None:
    """``import azml_chat`` loads no public name until one is used; the clients load attrs (the
    message model) and httpx2, but neither aiohttp nor cattrs/anyio (kept lazy)."""
    seen = "print(sorted(m for m in ('aiohttp', 'cattrs', 'attrs', 'anyio', 'httpx2') if m in sys.modules))"
    for statement, loaded in (
        ("import azml_chat", "[]"),
        ("from azml_chat import AsyncChatClient, ChatClient", "['attrs']"),  # httpx2 loads with a client
    ):
        code = f"import sys; {statement}; {seen}"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert done.stdout.strip() == loaded, statement


# --- the fault matrix of test_faults.py, through the aiohttp driver -------------------------------


async def run_aiohttp(url: str, case: Case) -> tuple[Outcome, str | None]:
    streamed: list[str] = []
    async with make_client(url, retry_policy=POLICY, **case.settings) as chat_client:
        outcome = await play_async(chat_client, case, streamed)  # asserts the pool is idle
    return outcome, "".join(streamed) if case.call == "stream" else None


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
@pytest.mark.asyncio
async def test_fault_matrix_on_aiohttp(case: Case, endpoint: LocalEndpoint, decided_waits: list[float]) -> None:
    for fault in case.faults():
        endpoint.add_fault(fault)
    url = {
        "chat": endpoint.chat_url,
        "score": endpoint.score_url,
        "refused": f"http://127.0.0.1:{free_port()}/v1/chat/completions",
    }[case.route]

    outcome, streamed = await run_aiohttp(url, case)

    if isinstance(case.expect, str):
        assert not isinstance(outcome, BaseException), f"expected a reply, got {outcome!r}"
        assert outcome == case.expect
    else:
        assert type(outcome) is case.expect, f"expected {case.expect.__name__}, got {outcome!r}"
        if case.match is not None:
            assert case.match in str(outcome)
        if case.check is not None:
            case.check(outcome)
        assert API_KEY not in str(outcome)
    if case.partial is not None:
        assert streamed == case.partial
    attempts = len(decided_waits) + 1 if case.route == "refused" else len(endpoint.requests)
    assert attempts == case.attempts
    if case.waits is not None:
        assert len(decided_waits) == len(case.waits), decided_waits
        for wait, (low, high) in zip(decided_waits, case.waits, strict=True):
            assert low - 1e-9 <= wait <= high + 1e-9, (decided_waits, case.waits)


# --- both drivers, side by side (the ``async_driver`` fixture) -------------------------------------


@pytest.mark.asyncio
async def test_model_info_connection_refused(async_driver: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    async with AsyncChatClient(url, api_key=API_KEY, driver=async_driver) as chat_client:  # type: ignore[arg-type]
        with pytest.raises(APIConnectionError) as caught:
            await chat_client.model_info()
    assert type(caught.value) is APIConnectionError


@pytest.mark.asyncio
async def test_a_stalled_stream_times_out(async_driver: str, endpoint: LocalEndpoint) -> None:
    """``timeout`` bounds each wait for the next piece of a stream, on either driver."""
    endpoint.add_fault(Fault(delay_between_chunks=1.0, chunk_size=200))
    settings = {"api_key": API_KEY, "retry_policy": FAST_RETRIES, "driver": async_driver}
    async with AsyncChatClient(endpoint.url, **settings) as chat_client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            await read_stream(chat_client, "one two three four five six seven", timeout=0.3)
        assert time.monotonic() - started < 2.5
