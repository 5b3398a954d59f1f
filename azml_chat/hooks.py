"""Hooks: see every call and every attempt, for metering, tracing and logs.

Subclass :class:`ChatHooks`, override what you need (each method may be a plain
function or ``async def``) and pass instances as ``hooks=[...]`` to a client::

    class Meter(ChatHooks):
        def on_call_end(self, result: CallResult) -> None:
            if result.response and result.response.usage:
                bill(tenant, result.response.usage.total_tokens)

    client = AsyncChatClient(url, api_key=key, hooks=[Meter()])

``on_call_start`` runs before the first attempt, ``on_attempt`` after each attempt
(with the wait before the next one, if any), and ``on_call_end`` once per call: when
``chat()`` returns or raises, or when a stream ends, fails or is closed early. A hook
that raises is logged (logger ``azml_chat``) and ignored: it never breaks the call.
Hooks added with :func:`add_default_hooks` apply to every client made afterwards
(:func:`azml_chat.otel.instrument` uses this). With no hooks the clients skip all of it.
:class:`~azml_chat.ChatClient` runs an ``async def`` hook to completion in a fresh event loop.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from .errors import AzureMLChatError
from .messages import ChatResponse, Message

__all__ = [
    "AttemptInfo",
    "CallInfo",
    "CallResult",
    "ChatHooks",
    "add_default_hooks",
    "default_hooks",
    "remove_default_hooks",
]

logger: logging.Logger = logging.getLogger("azml_chat")


@attrs.frozen
class CallInfo:
    """One ``chat()``, ``stream()`` or ``model_info()`` call, as sent (never the key).

    ``params`` are the body parameters (``temperature``, ``max_tokens``, ``tools``, ...)
    without the messages; ``model`` the requested model (the body's ``model`` or the
    client's ``model=``); ``context`` a dict for the hooks' own state (e.g. a span).
    """

    operation: Literal["chat", "stream", "model_info"]
    api_type: str
    route: str
    url: str
    server_address: str
    server_port: int
    model: str | None
    deployment_name: str | None
    params: Mapping[str, Any] = attrs.field(repr=False)
    messages: tuple[Message, ...] = attrs.field(repr=False)
    client_request_id: str
    context: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen
class AttemptInfo:
    """One attempt of a call: its status (``None`` when no reply came), the service's
    request id, how long it took, its error, and the wait before the next attempt
    (``retry_in``; ``None`` when none follows)."""

    call: CallInfo
    attempt: int
    status_code: int | None
    request_id: str | None
    elapsed: float
    error: AzureMLChatError | None
    retry_in: float | None


@attrs.frozen
class CallResult:
    """How a call ended: its reply or error, the attempts it took, its duration, the time
    to the first streamed chunk (streams only), and whether the caller closed the stream
    before it ended."""

    call: CallInfo
    response: ChatResponse | None
    error: BaseException | None
    attempts: int
    elapsed: float
    time_to_first_chunk: float | None = None
    closed_early: bool = False


class ChatHooks:
    """Base class of hooks: every method does nothing until overridden (sync or ``async def``)."""

    def on_call_start(self, call: CallInfo) -> Any:
        """Before the first attempt of a call."""

    def on_attempt(self, attempt: AttemptInfo) -> Any:
        """After each attempt."""

    def on_call_end(self, result: CallResult) -> Any:
        """Once per call, however it ended."""


_defaults: list[ChatHooks] = []


def default_hooks() -> tuple[ChatHooks, ...]:
    """The hooks every new client gets besides its own ``hooks=``."""
    return tuple(_defaults)


def add_default_hooks(hooks: ChatHooks) -> None:
    """Give ``hooks`` to every client made from now on."""
    if hooks not in _defaults:
        _defaults.append(hooks)


def remove_default_hooks(hooks: ChatHooks) -> None:
    """Stop giving ``hooks`` to new clients (clients made before keep them)."""
    if hooks in _defaults:
        _defaults.remove(hooks)


def check_hooks(hooks: Any) -> tuple[ChatHooks, ...]:
    """The client's hooks (its own, then the defaults); :class:`TypeError` for anything else."""
    own: Sequence[Any] = () if hooks is None else hooks
    if isinstance(own, ChatHooks) or not isinstance(own, Sequence):
        own = (own,) if isinstance(own, ChatHooks) else own
    for hook in own:
        if not isinstance(hook, ChatHooks):
            raise TypeError(f"hooks must be ChatHooks instances, not {type(hook).__name__}")
    return (*own, *(hook for hook in _defaults if hook not in own))


def _failed(hook: ChatHooks, method: str) -> None:
    logger.warning("hook %s.%s raised; ignored", type(hook).__name__, method, exc_info=True)


async def anotify(hooks: tuple[ChatHooks, ...], method: str, argument: Any) -> None:
    """Call ``method`` of each hook (awaiting ``async def`` ones); errors are logged, not raised."""
    for hook in hooks:
        try:
            result = getattr(hook, method)(argument)
            if inspect.isawaitable(result):
                await result
        except Exception:
            _failed(hook, method)


def notify(hooks: tuple[ChatHooks, ...], method: str, argument: Any) -> None:
    """Call ``method`` of each hook from sync code (an ``async def`` one runs in a fresh loop)."""
    for hook in hooks:
        try:
            result = getattr(hook, method)(argument)
            if inspect.iscoroutine(result):
                import anyio

                async def wait(awaitable: Any = result) -> None:
                    await awaitable

                anyio.run(wait)
        except Exception:
            _failed(hook, method)
