"""Test helpers shared by the test modules (imported as ``support``; fixtures live in conftest).

The both-clients helpers run the same call through ``ChatClient`` and ``AsyncChatClient``
(on asyncio, on trio, and on asyncio with the aiohttp driver): tests parametrize over
``MODES`` (or use the ``runner`` fixture), so every behaviour is checked on each client
without writing each test twice. The async client runs under ``anyio.run`` in a fresh
event loop, independent of pytest-asyncio.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import pytest

from azml_chat import AsyncChatClient, ChatClient, ChatResponse, RetryPolicy, StreamChunk

API_KEY = "test-key"
#: Retry waits short enough for tests; retry-after headers are still honoured up to 0.5 s.
FAST_RETRIES = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, max_retry_after=0.5)

T = TypeVar("T")

MODES = ["sync", "asyncio", "trio"]  # "aiohttp" (asyncio + driver="aiohttp") is accepted too
mode_param = pytest.mark.parametrize("mode", MODES)


def settings(**overrides: Any) -> dict[str, Any]:
    """Client keyword arguments for the local endpoint: its key, quick retries, a short timeout."""
    defaults: dict[str, Any] = {"api_key": API_KEY, "retry_policy": FAST_RETRIES, "timeout": 10}
    if "credential" in overrides:
        defaults.pop("api_key")
    return {**defaults, **overrides}


def with_client(
    mode: str,
    url: str,
    sync_action: Callable[[ChatClient], T],
    async_action: Callable[[AsyncChatClient], Any],
    **client_kwargs: Any,
) -> T:
    """``sync_action(ChatClient)`` or ``await async_action(AsyncChatClient)`` on the mode's loop."""
    if mode == "sync":
        with ChatClient(url, **settings(**client_kwargs)) as client:
            return sync_action(client)
    if mode == "aiohttp":
        client_kwargs = {"driver": "aiohttp", **client_kwargs}

    async def main() -> T:
        async with AsyncChatClient(url, **settings(**client_kwargs)) as client:
            result: T = await async_action(client)
            return result

    return anyio.run(main, backend="asyncio" if mode == "aiohttp" else mode)


def chat(mode: str, url: str, messages: Any, *, client: dict[str, Any] | None = None, **params: Any) -> ChatResponse:
    """One ``chat`` call with a new client of the mode."""
    return with_client(
        mode, url, lambda c: c.chat(messages, **params), lambda c: c.chat(messages, **params), **(client or {})
    )


def stream(
    mode: str,
    url: str,
    messages: Any,
    *,
    client: dict[str, Any] | None = None,
    stop_after: int | None = None,
    **params: Any,
) -> tuple[list[StreamChunk], ChatResponse | None]:
    """The chunks of one streamed call (at most ``stop_after``) and ``stream.response``."""

    def sync_action(c: ChatClient) -> tuple[list[StreamChunk], ChatResponse | None]:
        chunks: list[StreamChunk] = []
        with c.stream(messages, **params) as s:
            for chunk in s:
                chunks.append(chunk)
                if stop_after is not None and len(chunks) >= stop_after:
                    break
        return chunks, s.response

    async def async_action(c: AsyncChatClient) -> tuple[list[StreamChunk], ChatResponse | None]:
        chunks: list[StreamChunk] = []
        async with c.stream(messages, **params) as s:
            async for chunk in s:
                chunks.append(chunk)
                if stop_after is not None and len(chunks) >= stop_after:
                    break
        return chunks, s.response

    return with_client(mode, url, sync_action, async_action, **(client or {}))


class ClientRunner:
    """The both-clients helpers bound to one mode (the ``runner`` fixture hands these out)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def chat(self, url: str, messages: Any, *, client: dict[str, Any] | None = None, **params: Any) -> ChatResponse:
        return chat(self.mode, url, messages, client=client, **params)

    def stream(
        self, url: str, messages: Any, *, client: dict[str, Any] | None = None, **params: Any
    ) -> tuple[list[StreamChunk], ChatResponse]:
        chunks, response = stream(self.mode, url, messages, client=client, **params)
        assert response is not None, "the stream did not end normally"
        return chunks, response


def aiohttp_connections_in_use(client: AsyncChatClient) -> int:
    """Connections a ``driver="aiohttp"`` client's pool has handed out and not got back."""
    session = client._transport.session  # type: ignore[attr-defined]
    return 0 if session is None else len(session.connector._acquired)


def assert_pool_idle(client: AsyncChatClient | ChatClient) -> None:
    """Fail if a client's pool still has a connection checked out (a leaked response).

    Works for both clients: httpx2's and httpx's clients keep an httpcore
    pool at ``_transport._pool``; a returned connection is idle or closed, and no request
    still waits on or holds a pool slot. With ``driver="aiohttp"``, the aiohttp connector
    must have no connection handed out.
    """
    if getattr(client, "driver", "httpx") == "aiohttp":
        in_use = aiohttp_connections_in_use(client)  # type: ignore[arg-type]
        assert not in_use, f"{in_use} aiohttp connection(s) left checked out of the pool"
        return
    pool = client._transport.client._transport._pool  # type: ignore[attr-defined]
    assert not pool._requests, f"{len(pool._requests)} request(s) still hold a pool slot"
    busy = [conn for conn in pool.connections if not (conn.is_idle() or conn.is_closed())]
    assert not busy, f"connection(s) left checked out of the pool: {busy}"


#: One TLS context for the tests' own httpx clients: building one per client (httpx's default)
#: loads the CA bundle each time, which costs tens of milliseconds.
TLS_CONTEXT = ssl.create_default_context()
