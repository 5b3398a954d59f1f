"""Shared fixtures: running local endpoints (real HTTP on 127.0.0.1) and clients bound to them.

Async tests use ``@pytest.mark.asyncio`` (pytest-asyncio, strict mode); tests that must
also run on trio use ``@pytest.mark.anyio`` with the ``anyio_backend`` fixture.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from azml_chat import AsyncChatClient, ChatClient, ChatResponse, RetryPolicy, StreamChunk
from azml_chat.testing import LocalEndpoint

# Our own plugin loads here rather than through its pytest11 entry point (disabled in
# pyproject's addopts), so that coverage is already measuring when azml_chat is imported.
pytest_plugins = ["azml_chat.testing.pytest_plugin"]

API_KEY = "test-key"
#: Retry waits short enough for tests; retry-after headers are still honoured up to 0.5 s.
FAST_RETRIES = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, max_retry_after=0.5)


@pytest.fixture(autouse=True)
def _no_azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's real Azure settings."""
    for name in (
        "AZUREML_ENDPOINT_URL",
        "AZUREML_ENDPOINT_API_KEY",
        "AZUREML_DEPLOYMENT_NAME",
        "AZUREML_ENDPOINT_API_TYPE",
        "AZUREML_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def shared_endpoint() -> Iterator[LocalEndpoint]:
    """One endpoint for read-only tests (no faults, no request assertions)."""
    with LocalEndpoint(api_key=API_KEY) as endpoint:
        yield endpoint


@pytest.fixture
def endpoint() -> Iterator[LocalEndpoint]:
    """A fresh serverless endpoint (dedicated routes served too) for tests that script faults."""
    with LocalEndpoint(kind="serverless", api_key=API_KEY) as endpoint:
        yield endpoint


@pytest.fixture
def dedicated() -> Iterator[LocalEndpoint]:
    """A fresh dedicated endpoint (llama family, ``{"output": ...}`` replies)."""
    with LocalEndpoint(kind="dedicated", family="llama", api_key=API_KEY) as endpoint:
        yield endpoint


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ClientRunner:
    """Runs one scenario through either client, so each test covers both.

    ``mode`` is ``"async"`` (AsyncChatClient, driven by ``anyio.run``), ``"aiohttp"``
    (AsyncChatClient with ``driver="aiohttp"``) or ``"sync"`` (ChatClient). A fresh
    client per call keeps tests independent.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def client_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        driver = {"driver": "aiohttp"} if self.mode == "aiohttp" else {}
        return {"api_key": API_KEY, "retry_policy": FAST_RETRIES, **driver, **kwargs}

    def chat(self, url: str, messages: Any, *, client: dict[str, Any] | None = None, **params: Any) -> ChatResponse:
        settings = self.client_kwargs(client or {})
        if self.mode == "sync":
            with ChatClient(url, **settings) as sync_client:
                return sync_client.chat(messages, **params)

        async def run() -> ChatResponse:
            async with AsyncChatClient(url, **settings) as async_client:
                return await async_client.chat(messages, **params)

        return anyio.run(run)

    def stream(
        self, url: str, messages: Any, *, client: dict[str, Any] | None = None, **params: Any
    ) -> tuple[list[StreamChunk], ChatResponse]:
        settings = self.client_kwargs(client or {})
        if self.mode == "sync":
            with ChatClient(url, **settings) as sync_client, sync_client.stream(messages, **params) as stream:
                chunks = list(stream)
                return chunks, stream.get_final_response()

        async def run() -> tuple[list[StreamChunk], ChatResponse]:
            async with AsyncChatClient(url, **settings) as async_client:
                async with async_client.stream(messages, **params) as stream:
                    chunks = [chunk async for chunk in stream]
                    return chunks, await stream.get_final_response()

        return anyio.run(run)


@pytest.fixture(params=["async", "sync", "aiohttp"])
def runner(request: pytest.FixtureRequest) -> ClientRunner:
    """The same scenario through AsyncChatClient (httpx and aiohttp drivers) and ChatClient."""
    return ClientRunner(request.param)


@pytest.fixture(params=["httpx", "aiohttp"])
def async_driver(request: pytest.FixtureRequest) -> str:
    """The ``driver=`` of AsyncChatClient: async tests taking this fixture run on both drivers."""
    driver: str = request.param
    return driver


def assert_pool_idle(client: AsyncChatClient | ChatClient) -> None:
    """Fail if a client's pool still has a connection checked out (a leaked response).

    Works for both clients: ``httpx.AsyncClient`` and ``httpx.Client`` both keep an httpcore
    pool at ``_transport._pool``; a returned connection is idle or closed, and no request
    still waits on or holds a pool slot. With ``driver="aiohttp"``, the aiohttp connector
    must have no connection handed out.
    """
    if getattr(client, "driver", "httpx") == "aiohttp":
        session = client._driver._session  # type: ignore[union-attr]
        acquired = session.connector._acquired if session is not None else ()
        assert not acquired, f"{len(acquired)} aiohttp connection(s) left checked out of the pool"
        return
    pool = client._http._transport._pool  # type: ignore[union-attr]
    assert not pool._requests, f"{len(pool._requests)} request(s) still hold a pool slot"
    busy = [conn for conn in pool.connections if not (conn.is_idle() or conn.is_closed())]
    assert not busy, f"connection(s) left checked out of the pool: {busy}"


#: One TLS context for the tests' own httpx clients: building one per client (httpx's default)
#: loads the CA bundle each time, which costs tens of milliseconds.
TLS_CONTEXT = ssl.create_default_context()
