"""Run the same call through ``ChatClient`` and ``AsyncChatClient`` (on asyncio and on trio).

Tests parametrize over ``MODES`` and call these helpers, so every behaviour is checked
on both clients without writing each test twice. The async client runs under
``anyio.run`` in a fresh event loop, independent of pytest-asyncio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import pytest
from conftest import API_KEY, FAST_RETRIES

from azml_chat import AsyncChatClient, ChatClient, ChatResponse, StreamChunk

T = TypeVar("T")

MODES = ["sync", "asyncio", "trio"]
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

    async def main() -> T:
        async with AsyncChatClient(url, **settings(**client_kwargs)) as client:
            result: T = await async_action(client)
            return result

    return anyio.run(main, backend=mode)


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
