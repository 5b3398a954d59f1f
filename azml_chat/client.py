"""``AsyncChatClient`` and ``ChatClient``: pumps over the sans-IO core.

Each call is prepared by :func:`azml_chat._core.prepare` and run by an
:class:`~azml_chat._core.Attempts` flow that yields actions; the pumps below perform them
with a transport (:mod:`azml_chat._transport`) and decide nothing themselves.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar, Unpack

from . import _core
from ._core import GET_TOKEN, Emit, Notify, Read, Release, Send, Sleep
from .config import ChatParams, ClientOptions, ClientSettings
from .errors import AzureMLChatError, ConfigurationError, StreamError
from .formatters import ChatFormatter
from .hooks import CallInfo, CallResult, anotify, notify
from .messages import ChatResponse, MessageInput, ModelInfo, StreamChunk

if TYPE_CHECKING:
    import aiohttp
    import httpx
    import httpx2

    from ._transport.base import AsyncTransport, SyncTransport

__all__ = ["AsyncChatClient", "AsyncChatStream", "ChatClient", "ChatStream"]

_T = TypeVar("_T")
#: The concurrency limit of a client without ``max_concurrency``: nothing to wait for.
_UNLIMITED = contextlib.nullcontext()
Driver = Literal["httpx2", "httpx", "aiohttp"]


def _library(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigurationError(f'driver="{name}" needs {name}: pip install {name} ({exc})') from None


class _BaseChatClient:
    """Settings, views and call preparation shared by both clients."""

    _settings: ClientSettings
    _tokens: Any
    _include_defaults: bool
    _owner: ClassVar[str]

    def __init__(self, endpoint_url: str | None = None, **options: Unpack[ClientOptions]) -> None:
        self._settings = ClientSettings.create(type(self).__name__, endpoint_url, options)
        self._tokens = None
        if self._settings.credential is not None:
            from ._auth import TokenProvider  # only with a credential: it loads anyio

            settings = self._settings
            self._tokens = TokenProvider(
                settings.credential, settings.credential_scope or settings.endpoint.scope or ""
            )

    @classmethod
    def from_env(cls, **overrides: Unpack[ClientOptions]) -> Self:
        """A client configured from ``AZUREML_ENDPOINT_URL``, ``AZUREML_ENDPOINT_API_KEY``,
        ``AZUREML_DEPLOYMENT_NAME``, ``AZUREML_ENDPOINT_API_TYPE`` and ``AZUREML_TIMEOUT``
        (what the constructor does with no URL); keyword arguments override them."""
        return cls(**overrides)

    # --- read-only views -----------------------------------------------------------

    @property
    def settings(self) -> ClientSettings:
        """Every setting, validated (read-only)."""
        return self._settings

    @property
    def endpoint_url(self) -> str:
        """The full request URL (with ``api-version`` where the route takes one)."""
        return self._settings.endpoint.url

    @property
    def api_type(self) -> str:
        """``dedicated``, ``serverless``, ``foundry`` or ``azure-openai``."""
        return self._settings.endpoint.api_type

    @property
    def route(self) -> str:
        """The route the URL names (see :mod:`azml_chat.config`)."""
        return self._settings.endpoint.route

    @property
    def formatter(self) -> ChatFormatter:
        """The formatter that builds request bodies and parses replies."""
        return self._settings.formatter

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """A copy of the default parameters sent with every call."""
        return dict(self._settings.model_kwargs)

    @property
    def deployment_name(self) -> str | None:
        """The pinned deployment (``azureml-model-deployment``), if any."""
        return self._settings.deployment_name

    @property
    def timeout(self) -> float | None:
        """Seconds each attempt may take; ``None`` for no time-out."""
        return self._settings.timeout

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt."""
        return self._settings.max_retries

    @property
    def max_response_bytes(self) -> int:
        """Largest reply body accepted."""
        return self._settings.max_response_bytes

    @property
    def max_concurrency(self) -> int | None:
        """At most this many calls in flight (``None``: no limit)."""
        return self._settings.max_concurrency

    def __repr__(self) -> str:
        settings = self._settings
        auth = "credential" if self._tokens else ("api-key" if settings.api_key is not None else "none")
        return (
            f"{type(self).__name__}(endpoint_url={self.endpoint_url!r}, api_type={self.api_type!r}, "
            f"formatter={self.formatter.name!r}, deployment_name={self.deployment_name!r}, auth={auth!r})"
        )

    def _attempts(self, messages: MessageInput, params: ChatParams, *, stream: bool, method: str) -> _core.Attempts:
        owner = f"{type(self).__name__}.{method}"
        call = _core.prepare(
            self._settings, messages, params, stream=stream, owner=owner, include_defaults=self._include_defaults
        )
        info = self._call_info(call, method) if self._settings.hooks else None
        return _core.Attempts(call, self._settings, self._tokens, info=info)

    def _info_attempts(self) -> _core.Attempts:
        call = _core.info_call(self._settings, self._include_defaults)
        info = self._call_info(call, "model_info") if self._settings.hooks else None
        return _core.Attempts(call, self._settings, self._tokens, info=info)

    def _call_info(self, call: _core.Call, operation: Any) -> CallInfo:
        settings = self._settings
        endpoint = settings.endpoint
        model = call.params.get("model", settings.model)
        return CallInfo(
            operation,
            endpoint.api_type,
            endpoint.route,
            call.request.url,
            endpoint.host,
            endpoint.port or (443 if call.request.url.startswith("https:") else 80),
            model if isinstance(model, str) else None,
            settings.deployment_name,
            call.params,
            call.messages,
            call.request.headers.get("x-ms-client-request-id", ""),
        )

    def _result(
        self,
        attempts: _core.Attempts,
        response: ChatResponse | None,
        error: BaseException | None,
        first_chunk: float | None = None,
        closed_early: bool = False,
    ) -> CallResult:
        assert attempts.call_info is not None  # only asked for when hooks listen
        elapsed = time.monotonic() - attempts.started
        ttfc = None if first_chunk is None else first_chunk - attempts.started
        return CallResult(attempts.call_info, response, error, attempts.sent, elapsed, ttfc, closed_early)


# --- async -----------------------------------------------------------------------------


class AsyncChatClient(_BaseChatClient):
    """Async client for Azure ML (dedicated ``/score`` and vLLM), serverless, Foundry and
    Azure OpenAI chat endpoints.

    Example::

        async with AsyncChatClient("https://my-ep.eastus.inference.ml.azure.com/score",
                                   api_key=key, formatter="llama") as client:
            reply = await client.chat("Hello!", temperature=0.8, max_tokens=256)
            print(reply.content)

    Settings are the keyword arguments of :class:`~azml_chat.config.ClientOptions`; unset
    ones come from the ``AZUREML_*`` environment. Bytes move with httpx2 by default;
    ``http_client`` may be a caller-owned ``httpx2.AsyncClient``, ``httpx.AsyncClient`` or
    (with ``driver="aiohttp"``, extra ``azml-chat[aiohttp]``, asyncio only, several times
    less CPU per request) ``aiohttp.ClientSession``; the caller then closes it.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        http_client: httpx2.AsyncClient | httpx.AsyncClient | aiohttp.ClientSession | None = None,
        driver: Driver | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(endpoint_url, **options)
        settings = self._settings
        self._slots: Any = _UNLIMITED
        if settings.max_concurrency is not None:
            import anyio

            self._slots = anyio.Semaphore(settings.max_concurrency)
        headers = _core.default_headers(settings)
        transport: AsyncTransport
        if driver == "aiohttp":
            try:
                from ._transport.aiohttp import AiohttpTransport
            except ImportError as exc:
                raise ConfigurationError(
                    f'driver="aiohttp" needs aiohttp: pip install "azml-chat[aiohttp]" ({exc})'
                ) from None
            transport = AiohttpTransport(http_client, settings.timeout, headers)  # type: ignore[arg-type]
            driver = "aiohttp"
        else:
            from ._transport.httpx import AsyncHttpxTransport, library_of

            if driver not in (None, "httpx2", "httpx"):
                raise ConfigurationError(f"driver must be 'httpx2', 'httpx' or 'aiohttp', not {driver!r}")
            library = (library_of(http_client) if http_client is not None else None) or _library(driver or "httpx2")
            transport = AsyncHttpxTransport(library, http_client, settings.timeout, headers)
            driver = library.__name__  # type: ignore[assignment]
        self._transport = transport
        self._include_defaults = not transport.holds_default_headers
        #: The HTTP library moving the bytes: ``"httpx2"``, ``"httpx"`` or ``"aiohttp"``.
        self.driver: Driver = driver  # type: ignore[assignment]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless the caller passed its own ``http_client``);
        later calls raise :class:`~azml_chat.ClientClosedError`."""
        await self._transport.aclose()

    async def chat(self, messages: MessageInput, **params: Unpack[ChatParams]) -> ChatResponse:
        """Send a chat and return the whole reply.

        ``messages`` is a string (one user turn), a :class:`~azml_chat.Message`, a dict, or a
        list of them. ``params`` are those of :class:`~azml_chat.config.ChatParams`
        (``temperature=0.8``, ``max_tokens=512``, ``tools=...``, ``extra_body={...}`` for
        model-specific keys, ``timeout=``, ``max_retries=``); an unknown one is a ``TypeError``.
        """
        attempts = self._attempts(messages, params, stream=False, method="chat")
        reply: ChatResponse = await self._call(attempts, attempts.chat())
        return reply

    def stream(self, messages: MessageInput, **params: Unpack[ChatParams]) -> AsyncChatStream:
        """Stream a reply: ``async with client.stream(...) as stream: async for chunk in stream``.

        Chunks carry text deltas, tool-call fragments, the finish reason and usage;
        ``stream.response`` holds the assembled :class:`~azml_chat.ChatResponse` once the
        stream ends. Only failures before the first chunk are retried. Dedicated ``/score``
        endpoints cannot stream: there the whole reply arrives as one chunk. ``timeout``
        bounds the wait for each piece, not the whole stream.
        """
        return AsyncChatStream(self, self._attempts(messages, params, stream=True, method="stream"))

    async def chat_structured(self, messages: MessageInput, cls: type[_T], **params: Unpack[ChatParams]) -> _T:
        """Ask for a reply shaped like ``cls`` (an attrs class, dataclass, TypedDict or pydantic
        model) and return it as a ``cls`` value.

        On chat-completions routes this sends ``response_format`` built from ``cls`` unless
        one is given. Raises :class:`~azml_chat.StructuredOutputError` (holding the reply
        text) when the reply is not JSON or does not fit ``cls``.
        """
        reply = await self.chat(messages, **_core.structured_params(self._settings, cls, params))
        result: _T = _core.structured_reply(reply, cls)
        return result

    async def model_info(self) -> ModelInfo:
        """``GET /info`` of a serverless or managed-compute endpoint: model name, type and provider."""
        attempts = self._info_attempts()
        info: ModelInfo = await self._call(attempts, attempts.info())
        return info

    async def _call(self, attempts: _core.Attempts, flow: _core.Flow) -> Any:
        """Run a whole call within the concurrency limit, telling the hooks, if any."""
        if attempts.call_info is None:
            if self._slots is _UNLIMITED:  # no max_concurrency: nothing to enter (measurably cheaper)
                return await self._run(flow)
            async with self._slots:
                return await self._run(flow)
        hooks = self._settings.hooks
        await anotify(hooks, "on_call_start", attempts.call_info)
        try:
            async with self._slots:
                reply = await self._run(flow)
        except BaseException as exc:
            await anotify(hooks, "on_call_end", self._result(attempts, None, exc))
            raise
        await anotify(hooks, "on_call_end", self._result(attempts, reply, None))
        return reply

    async def _run(self, flow: _core.Flow) -> Any:
        """Perform the actions of a flow that never emits (``chat()``, ``model_info()``) and
        return its result. A coroutine rather than :meth:`_pump`: an async generator costs a
        ``chat()`` call ~9k instructions more (asyncio registers each one, and ``aclose`` it).
        Send, Read and Release are spelt out in both pumps because they are the hot path;
        the rare actions share :meth:`_perform`."""
        transport = self._transport
        value: Any = None
        handle: Any = None
        try:
            while True:
                try:
                    action = flow.send(value)
                except StopIteration as stop:
                    return stop.value
                kind = type(action)
                value = None
                if kind is Read:
                    try:
                        value = await transport.read(action.handle)  # type: ignore[union-attr]
                    except AzureMLChatError as exc:
                        value = exc
                elif kind is Send:
                    try:
                        value = await transport.send(action.request)  # type: ignore[union-attr]
                        handle = value[2]
                    except AzureMLChatError as exc:
                        value = exc
                elif kind is Release:
                    handle = None
                    await transport.release(action.handle)  # type: ignore[union-attr]
                else:
                    value = await self._perform(action)
        finally:
            flow.close()
            if handle is not None:  # cancelled
                await transport.release(handle)

    async def _pump(self, flow: _core.Flow, result: list[Any]) -> AsyncGenerator[StreamChunk, None]:
        """As :meth:`_run`, for a stream: chunks the flow emits are yielded, its result goes
        into ``result``. Whatever happens, a response still open is released (also when the
        stream is dropped unclosed: asyncio then closes the generator)."""
        transport = self._transport
        value: Any = None
        handle: Any = None
        try:
            while True:
                try:
                    action = flow.send(value)
                except StopIteration as stop:
                    result.append(stop.value)
                    return
                kind = type(action)
                value = None
                if kind is Read:
                    try:
                        value = await transport.read(action.handle)  # type: ignore[union-attr]
                    except AzureMLChatError as exc:
                        value = exc
                elif kind is Emit:
                    yield action.chunk  # type: ignore[union-attr]
                elif kind is Send:
                    try:
                        value = await transport.send(action.request)  # type: ignore[union-attr]
                        handle = value[2]
                    except AzureMLChatError as exc:
                        value = exc
                elif kind is Release:
                    handle = None
                    await transport.release(action.handle)  # type: ignore[union-attr]
                else:
                    value = await self._perform(action)
        finally:
            flow.close()
            if handle is not None:  # cancelled, or the user left the stream early
                await transport.release(handle)

    async def _perform(self, action: _core.Action) -> Any:
        """The rare actions: a wait before a retry, a hook's report, a credential's token."""
        kind = type(action)
        if kind is Sleep:
            import anyio  # loaded on first retry: import time

            await anyio.sleep(action.seconds)  # type: ignore[union-attr]
            return None
        if kind is Notify:
            await anotify(self._settings.hooks, "on_attempt", action.info)  # type: ignore[union-attr]
            return None
        assert action is GET_TOKEN, action  # the only action left (_run's flows never emit)
        return await self._tokens.aget()


class AsyncChatStream:
    """A streamed reply: iterate it for :class:`~azml_chat.StreamChunk` values; use it as a
    context manager so that leaving early closes the response at once. A stream read to
    the end leaves its connection in the pool; one left early closes that connection
    (which also tells the server to stop generating), so nothing leaks."""

    def __init__(self, client: AsyncChatClient, attempts: _core.Attempts) -> None:
        self._client = client
        self._attempts = attempts
        self._iterator: AsyncGenerator[StreamChunk, None] | None = None
        self._reply: list[ChatResponse] = []  # the pump puts the reply here when the stream ends

    @property
    def response(self) -> ChatResponse | None:
        """The assembled reply, once the stream has ended normally (else ``None``)."""
        return self._reply[0] if self._reply else None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if self._iterator is None:
            client, attempts = self._client, self._attempts
            if attempts.call_info is None and client._slots is _UNLIMITED:
                # nothing to do around the pump: the caller iterates it directly (one generator
                # less for every chunk); closing it releases the response
                self._iterator = client._pump(attempts.stream(), self._reply)
            else:
                self._iterator = self._chunks()
        return self._iterator

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        if self._iterator is not None:
            await self._iterator.aclose()

    async def get_final_response(self) -> ChatResponse:
        """Read what is left of the stream and return the assembled reply."""
        async for _ in self:
            pass
        if self.response is None:
            raise StreamError("the stream was closed or failed before it ended: there is no final response")
        return self.response

    async def _chunks(self) -> AsyncGenerator[StreamChunk, None]:
        client, attempts = self._client, self._attempts
        result = self._reply
        if attempts.call_info is None:
            async with client._slots, contextlib.aclosing(client._pump(attempts.stream(), result)) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        hooks = client._settings.hooks
        await anotify(hooks, "on_call_start", attempts.call_info)
        first: float | None = None
        error: BaseException | None = None
        try:
            async with client._slots, contextlib.aclosing(client._pump(attempts.stream(), result)) as chunks:
                async for chunk in chunks:
                    first = first or time.monotonic()
                    yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            early = (error is None and self.response is None) or isinstance(error, GeneratorExit)
            ended = client._result(attempts, self.response, None if early else error, first, early)
            await anotify(hooks, "on_call_end", ended)


# --- sync ------------------------------------------------------------------------------


class ChatClient(_BaseChatClient):
    """Blocking client with the same settings and behaviour as :class:`AsyncChatClient`.

    Example::

        with ChatClient.from_env() as client:
            print(client.chat("Hello!", max_tokens=256).content)

    Safe to share between threads (the connection pool is thread-safe). ``http_client``
    may be a caller-owned ``httpx2.Client`` or ``httpx.Client``.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        http_client: httpx2.Client | httpx.Client | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(endpoint_url, **options)
        settings = self._settings
        if self._tokens is not None and self._tokens.is_async:
            raise ConfigurationError("an async credential (azure.identity.aio) needs AsyncChatClient")
        self._slots: Any = _UNLIMITED
        if settings.max_concurrency is not None:
            self._slots = threading.BoundedSemaphore(settings.max_concurrency)
        from ._transport.httpx import SyncHttpxTransport, library_of

        library = (library_of(http_client) if http_client is not None else None) or _library("httpx2")
        transport = SyncHttpxTransport(library, http_client, settings.timeout, _core.default_headers(settings))
        self._transport: SyncTransport = transport
        self._include_defaults = not transport.holds_default_headers
        #: The HTTP library moving the bytes: ``"httpx2"`` or ``"httpx"``.
        self.driver: Driver = library.__name__  # type: ignore[assignment]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (unless the caller passed its own ``http_client``);
        later calls raise :class:`~azml_chat.ClientClosedError`."""
        self._transport.close()

    def chat(self, messages: MessageInput, **params: Unpack[ChatParams]) -> ChatResponse:
        """Send a chat and return the whole reply; see :meth:`AsyncChatClient.chat`."""
        attempts = self._attempts(messages, params, stream=False, method="chat")
        reply: ChatResponse = self._call(attempts, attempts.chat())
        return reply

    def stream(self, messages: MessageInput, **params: Unpack[ChatParams]) -> ChatStream:
        """Stream a reply: ``with client.stream(...) as stream: for chunk in stream``;
        see :meth:`AsyncChatClient.stream`."""
        return ChatStream(self, self._attempts(messages, params, stream=True, method="stream"))

    def chat_structured(self, messages: MessageInput, cls: type[_T], **params: Unpack[ChatParams]) -> _T:
        """Ask for a reply shaped like ``cls``; see :meth:`AsyncChatClient.chat_structured`."""
        reply = self.chat(messages, **_core.structured_params(self._settings, cls, params))
        result: _T = _core.structured_reply(reply, cls)
        return result

    def model_info(self) -> ModelInfo:
        """``GET /info`` of a serverless or managed-compute endpoint: model name, type and provider."""
        attempts = self._info_attempts()
        info: ModelInfo = self._call(attempts, attempts.info())
        return info

    def _call(self, attempts: _core.Attempts, flow: _core.Flow) -> Any:
        """Run a whole call within the concurrency limit, telling the hooks, if any."""
        if attempts.call_info is None:
            if self._slots is _UNLIMITED:  # no max_concurrency: nothing to enter (measurably cheaper)
                return self._run(flow)
            with self._slots:
                return self._run(flow)
        hooks = self._settings.hooks
        notify(hooks, "on_call_start", attempts.call_info)
        try:
            with self._slots:
                reply = self._run(flow)
        except BaseException as exc:
            notify(hooks, "on_call_end", self._result(attempts, None, exc))
            raise
        notify(hooks, "on_call_end", self._result(attempts, reply, None))
        return reply

    def _run(self, flow: _core.Flow) -> Any:
        result: list[Any] = []
        for _ in self._pump(flow, result):
            pass
        return result[0]

    def _pump(self, flow: _core.Flow, result: list[Any]) -> Generator[StreamChunk, None, None]:
        """Perform the flow's actions until it returns (into ``result``) or raises; chunks it
        emits are yielded. Whatever happens, a response still open is released."""
        transport = self._transport
        value: Any = None
        handle: Any = None
        try:
            while True:
                try:
                    action = flow.send(value)
                except StopIteration as stop:
                    result.append(stop.value)
                    return
                kind = type(action)
                value = None
                if kind is Read:
                    try:
                        value = transport.read(action.handle)  # type: ignore[union-attr]
                    except AzureMLChatError as exc:
                        value = exc
                elif kind is Emit:
                    yield action.chunk  # type: ignore[union-attr]
                elif kind is Send:
                    try:
                        value = transport.send(action.request)  # type: ignore[union-attr]
                        handle = value[2]
                    except AzureMLChatError as exc:
                        value = exc
                elif kind is Release:
                    handle = None
                    transport.release(action.handle)  # type: ignore[union-attr]
                elif kind is Sleep:
                    import time

                    time.sleep(action.seconds)  # type: ignore[union-attr]
                elif kind is Notify:
                    notify(self._settings.hooks, "on_attempt", action.info)  # type: ignore[union-attr]
                elif action is GET_TOKEN:
                    value = self._tokens.get()
        finally:
            flow.close()
            if handle is not None:  # the user left a stream early
                transport.release(handle)


class ChatStream:
    """A streamed reply for :class:`ChatClient`; see :class:`AsyncChatStream`."""

    def __init__(self, client: ChatClient, attempts: _core.Attempts) -> None:
        self._client = client
        self._attempts = attempts
        self._iterator: Generator[StreamChunk, None, None] | None = None
        self._reply: list[ChatResponse] = []  # the pump puts the reply here when the stream ends

    @property
    def response(self) -> ChatResponse | None:
        """The assembled reply, once the stream has ended normally (else ``None``)."""
        return self._reply[0] if self._reply else None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamChunk]:
        if self._iterator is None:
            client, attempts = self._client, self._attempts
            if attempts.call_info is None and client._slots is _UNLIMITED:
                self._iterator = client._pump(attempts.stream(), self._reply)  # as AsyncChatStream.__aiter__
            else:
                self._iterator = self._chunks()
        return self._iterator

    def close(self) -> None:
        """Stop reading and release the connection."""
        if self._iterator is not None:
            self._iterator.close()

    def get_final_response(self) -> ChatResponse:
        """Read what is left of the stream and return the assembled reply."""
        for _ in self:
            pass
        if self.response is None:
            raise StreamError("the stream was closed or failed before it ended: there is no final response")
        return self.response

    def _chunks(self) -> Generator[StreamChunk, None, None]:
        client, attempts = self._client, self._attempts
        result = self._reply
        if attempts.call_info is None:
            with client._slots:
                yield from client._pump(attempts.stream(), result)  # closing this closes the pump
            return
        hooks = client._settings.hooks
        notify(hooks, "on_call_start", attempts.call_info)
        first: float | None = None
        error: BaseException | None = None
        try:
            with client._slots, contextlib.closing(client._pump(attempts.stream(), result)) as chunks:
                for chunk in chunks:
                    first = first or time.monotonic()
                    yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            early = (error is None and self.response is None) or isinstance(error, GeneratorExit)
            notify(
                hooks, "on_call_end", client._result(attempts, self.response, None if early else error, first, early)
            )
