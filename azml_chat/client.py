"""``AsyncChatClient`` and ``ChatClient``: thin I/O drivers over the sans-IO core.

Everything both clients decide (request building, error mapping, retry waits,
stream assembly) lives in :mod:`azml_chat._core`; this module only moves bytes
with ``httpx.AsyncClient`` or ``httpx.Client`` and sleeps between attempts.
``AsyncChatClient`` reaches its HTTP library through a small driver object
(``_HttpxDriver`` here, ``AiohttpDriver`` in :mod:`azml_chat._aiohttp`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from functools import lru_cache
from random import getrandbits
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, TypeVar

import attrs
import httpx

from . import _core
from ._core import RetryPolicy
from ._json import dumps
from .config import (
    DEFAULT_API_VERSION,
    DEFAULT_TIMEOUT,
    Endpoint,
    parse_endpoint,
    settings_from_env,
)
from .errors import (
    APITimeoutError,
    AuthenticationError,
    AzureMLChatError,
    ConfigurationError,
    InvalidRequestError,
    ResponseFormatError,
    StreamError,
)
from .formatters import ChatFormatter, LlamaChatFormatter, OpenAIChatFormatter, get_formatter
from .messages import ChatResponse, MessageInput, StreamChunk, ToolCallDelta, coerce_messages

if TYPE_CHECKING:
    import aiohttp

    from ._auth import TokenProvider

__all__ = ["AsyncChatClient", "AsyncChatStream", "ChatClient", "ChatStream", "ModelInfo"]

logger = logging.getLogger("azml_chat")

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_T = TypeVar("_T")


@attrs.frozen
class ModelInfo:
    """What ``GET /info`` says about a serverless deployment."""

    model_name: str | None
    model_type: str | None
    model_provider_name: str | None
    raw: Any = attrs.field(default=None, repr=False)


class _Call:
    """One prepared call: the encoded request and the limits it runs under (never changed once made)."""

    __slots__ = ("content", "deadline_seconds", "headers", "max_retries", "stream", "timeout", "url")

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        content: bytes,
        timeout: httpx.Timeout,
        deadline_seconds: float | None,
        max_retries: int,
        stream: bool,
    ) -> None:
        self.url = url
        self.headers = headers
        self.content = content
        self.timeout = timeout
        self.deadline_seconds = deadline_seconds
        self.max_retries = max_retries
        self.stream = stream


def _check_timeout(value: Any, error: type[AzureMLChatError] = ConfigurationError) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise error(f"timeout must be a positive number of seconds or None, not {value!r}")
    return float(value)


def _check_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(f"max_retries must be a whole number >= 0, not {value!r}")
    return value


_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


@lru_cache(maxsize=32)
def _httpx_url(url: str) -> httpx.URL:
    """The endpoint URL parsed once: httpx parses a string URL on every request (~15 µs)."""
    return httpx.URL(url)


def _new_request_id() -> str:
    """A random UUID4 string for ``x-ms-client-request-id`` (3x cheaper than ``str(uuid.uuid4())``).

    An id for correlating logs, not a secret, so ``random`` (re-seeded after fork) is enough.
    """
    digits = f"{getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


class _BaseChatClient:
    """Settings and request preparation shared by both clients."""

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        api_key: str | None = None,
        api_type: str | None = None,
        deployment_name: str | None = None,
        formatter: str | ChatFormatter | type[ChatFormatter] | None = None,
        model: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        retry_policy: RetryPolicy | None = None,
        credential: Any = None,
        credential_scope: str | None = None,
        auth_header: Literal["bearer", "api-key"] = "bearer",
        api_version: str = DEFAULT_API_VERSION,
        headers: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_concurrency: int | None = None,
    ) -> None:
        env = settings_from_env()
        if endpoint_url is None:
            endpoint_url = env.get("endpoint_url")
            if endpoint_url is None:
                raise ConfigurationError("no endpoint URL: pass endpoint_url=... or set AZUREML_ENDPOINT_URL")
        if api_key is None and credential is None:
            api_key = env.get("api_key")
        if api_type is None:
            api_type = env.get("api_type")
        if deployment_name is None:
            deployment_name = env.get("deployment_name")
        self._endpoint: Endpoint = parse_endpoint(endpoint_url, api_type, api_version)
        chat_route = self._endpoint.route == "chat"
        chosen = get_formatter(formatter if formatter is not None else ("openai" if chat_route else "llama"))
        if chat_route and isinstance(chosen, LlamaChatFormatter):
            chosen = OpenAIChatFormatter()  # every family speaks the OpenAI body on chat-completions routes
        self._formatter = chosen
        if model_kwargs is not None and not isinstance(model_kwargs, Mapping):
            raise ConfigurationError(f"model_kwargs must be a dict, not {type(model_kwargs).__name__}")
        self._model_kwargs = dict(model_kwargs or {})
        self._model = model
        self.max_retries = _check_retries(max_retries)
        self.timeout = _check_timeout(env.get("timeout", DEFAULT_TIMEOUT) if timeout is None else timeout)
        self._httpx_timeout = httpx.Timeout(self.timeout)
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise ConfigurationError(f"retry_policy must be a RetryPolicy, not {type(retry_policy).__name__}")
        self._retry_policy = retry_policy or RetryPolicy()
        if not isinstance(max_response_bytes, int) or max_response_bytes <= 0:
            raise ConfigurationError("max_response_bytes must be a positive number of bytes")
        self.max_response_bytes = max_response_bytes
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1
        ):
            raise ConfigurationError(f"max_concurrency must be a whole number >= 1 or None, not {max_concurrency!r}")
        #: At most this many calls use the connection pool at once; the rest wait their turn in order.
        self.max_concurrency = max_concurrency
        if auth_header not in ("bearer", "api-key"):
            raise ConfigurationError("auth_header must be 'bearer' or 'api-key'")
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ConfigurationError("api_key must be a non-empty string")
        if api_key is not None and credential is not None:
            raise ConfigurationError("pass either api_key or credential, not both")
        self._auth_header = auth_header
        self._api_key = api_key
        self._tokens: TokenProvider | None = None
        if credential is not None:
            from ._auth import SCOPES, TokenProvider  # only with a credential: it loads anyio

            self._tokens = TokenProvider(credential, credential_scope or SCOPES[self._endpoint.api_type])
        base = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": _core.USER_AGENT,
        }
        if deployment_name:
            base["azureml-model-deployment"] = deployment_name
        if headers:
            base.update(_core.check_headers(headers))
        if api_key is not None:
            base.update(self._auth({}, api_key))
        base = _core.check_headers(base)  # deployment_name and api_key go out as headers too
        self._headers = base
        #: Headers each request carries itself: all of them, unless the HTTP client we built holds them.
        self._call_headers = base
        self.deployment_name = deployment_name

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """A client configured from ``AZUREML_ENDPOINT_URL``, ``AZUREML_ENDPOINT_API_KEY``,
        ``AZUREML_DEPLOYMENT_NAME``, ``AZUREML_ENDPOINT_API_TYPE`` and ``AZUREML_TIMEOUT``;
        keyword arguments override them."""
        return cls(**{**settings_from_env(), **overrides})

    # --- read-only views -----------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The full request URL (with ``api-version`` where the route needs it)."""
        return self._endpoint.url

    @property
    def api_type(self) -> str:
        """``dedicated`` or ``serverless``."""
        return self._endpoint.api_type

    @property
    def formatter(self) -> ChatFormatter:
        """The formatter that builds request bodies and parses replies."""
        return self._formatter

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """A copy of the default parameters sent with every call."""
        return dict(self._model_kwargs)

    def __repr__(self) -> str:
        auth = "credential" if self._tokens else ("api-key" if self._api_key else "none")
        return (
            f"{type(self).__name__}(endpoint_url={self._endpoint.url!r}, api_type={self.api_type!r}, "
            f"formatter={self._formatter.name!r}, deployment_name={self.deployment_name!r}, auth={auth!r})"
        )

    # --- request preparation -------------------------------------------------------

    def _auth(self, headers: dict[str, str], secret: str) -> dict[str, str]:
        if self._auth_header == "api-key":
            headers["api-key"] = secret
        else:
            headers["authorization"] = f"Bearer {secret}"
        return headers

    def _prepare(
        self,
        messages: MessageInput,
        params: Mapping[str, Any],
        *,
        stream: bool,
        timeout: float | None,
        max_retries: int | None,
    ) -> _Call:
        prepared = coerce_messages(messages)
        merged = _core.merge_params(self._model_kwargs, params)
        if "tools" in merged or "tool_choice" in merged:
            from .tools import tool_choice_to_wire, tools_to_wire  # loaded on first use: import time

            if "tools" in merged:
                merged["tools"] = tools_to_wire(merged["tools"])
            if "tool_choice" in merged:
                merged["tool_choice"] = tool_choice_to_wire(merged["tool_choice"])
        if isinstance(merged.get("response_format"), type):
            from .structured import response_format_for

            merged["response_format"] = response_format_for(merged["response_format"])
        chat_route = self._endpoint.route == "chat"
        if self._model is not None and chat_route:
            merged.setdefault("model", self._model)
        streaming = stream and chat_route and self._formatter.supports_streaming
        if streaming:
            merged["stream"] = True
        elif chat_route:
            merged.pop("stream", None)
        body = _core.format_body(self._formatter, prepared, merged)
        headers = {**self._call_headers, "x-ms-client-request-id": _new_request_id()}
        extra = self._formatter.request_headers(body)
        if extra:
            headers.update(extra)
        if streaming:
            headers["accept"] = "text/event-stream"
        seconds = _check_timeout(timeout, InvalidRequestError)
        return _Call(
            self._endpoint.url,
            headers,
            dumps(body),
            self._httpx_timeout if seconds is None else httpx.Timeout(seconds),
            self.timeout if seconds is None else seconds,
            self.max_retries if max_retries is None else _check_retries(max_retries),
            streaming,
        )

    def _structured_params(self, cls: type[Any], params: dict[str, Any]) -> dict[str, Any]:
        """``params`` asking for JSON shaped like ``cls`` (OpenAI bodies only), unless they already ask."""
        if self._formatter.route == "chat" and "response_format" not in {**self._model_kwargs, **params}:
            from .structured import response_format_for

            return {**params, "response_format": response_format_for(cls)}
        return params

    # What to do after a failed attempt: the same decisions for both clients.

    def _status_error(
        self, status: int, response_headers: Mapping[str, str], body: bytes, sent: Mapping[str, str]
    ) -> AzureMLChatError:
        """The typed error for an error reply, its body redacted of the key or token we sent."""
        return _core.status_error(status, response_headers, _core.redact(body, {**self._headers, **sent}))

    def _token_rejected(self, error: AzureMLChatError, seen: int) -> bool:
        """A 401 on a credential's token: forget that token so the next attempt gets a new one."""
        if self._tokens is None or not isinstance(error, AuthenticationError):
            return False
        self._tokens.invalidate(seen)
        return True

    def _retry_delay(self, error: AzureMLChatError, attempt: int, call: _Call) -> float:
        """Seconds to wait before the next attempt; raises ``error`` when it must not be retried."""
        delay = _core.retry_delay(error, attempt, call.max_retries, self._retry_policy)
        if delay is None:
            logger.debug("attempt %d failed, not retrying: %s", attempt + 1, error)
            raise error
        logger.info("attempt %d failed (%s); retrying in %.3fs", attempt + 1, error, delay)
        return delay

    # DEBUG logs: method, URL, status, timings and sizes; never headers or bodies (they hold secrets).

    def _log_attempt(self, call: _Call, attempt: int) -> None:
        logger.debug("POST %s (attempt %d of %d)", call.url, attempt + 1, call.max_retries + 1)

    def _log_status(self, status: int, headers: Mapping[str, str], sent: float) -> None:
        request_id = _core.request_id_of(headers)
        elapsed = (time.monotonic() - sent) * 1000
        logger.debug("HTTP %d after %.1f ms (request id %s)", status, elapsed, request_id)

    def _log_done(self, what: str, size: int, started: float) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s ended: %d bytes in %.1f ms", what, size, (time.monotonic() - started) * 1000)


def _response_chunk(reply: ChatResponse) -> StreamChunk:
    """A whole reply as one stream chunk (for routes that cannot stream)."""
    deltas = tuple(
        ToolCallDelta(index, call.id, call.name, call.arguments) for index, call in enumerate(reply.tool_calls)
    )
    return StreamChunk(
        reply.content, reply.reasoning_content or "", deltas, reply.finish_reason, reply.usage, reply.raw
    )


def _is_sse(headers: Mapping[str, str]) -> bool:
    content_type: str = headers.get("content-type", "")
    return content_type.startswith("text/event-stream")


def _read_error(headers: Mapping[str, str], limit: int | None) -> AzureMLChatError:
    """Too big (``limit`` given) or too slow: the errors of a bounded body read."""
    request_id = _core.request_id_of(headers)
    if limit is not None:
        return ResponseFormatError(f"the reply is larger than max_response_bytes={limit}", request_id=request_id)
    return APITimeoutError("the reply took longer than the timeout", request_id=request_id)


# --- async drivers ---------------------------------------------------------------------


class _AsyncDriver(Protocol):
    """The I/O an :class:`AsyncChatClient` needs from an HTTP library; nothing here decides anything."""

    #: What the library raises for transport failures (connect, read, time-outs, disconnects).
    errors: tuple[type[BaseException], ...]

    async def send(self, call: _Call, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], Any]:
        """POST the call: status, headers and the unread response."""
        ...

    def body(self, response: Any) -> AsyncIterator[bytes]:
        """The (decoded) body, piece by piece as it arrives."""
        ...

    async def release(self, response: Any) -> None:
        """Return the connection to the pool, or close it if the body was not read to the end."""
        ...

    def timed_out(self, exc: BaseException) -> bool:
        """Whether one of :attr:`errors` is a time-out."""
        ...

    async def get(
        self, url: str, headers: Mapping[str, str], timeout: float | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """A small GET, read whole."""
        ...

    async def aclose(self) -> None:
        """Close the pool if the driver created it."""
        ...


class _HttpxDriver:
    """The default driver: ``httpx.AsyncClient`` (asyncio and trio)."""

    errors: tuple[type[BaseException], ...] = (httpx.TransportError,)

    def __init__(self, http: httpx.AsyncClient, owned: bool) -> None:
        self.http = http
        self.owned = owned

    async def send(self, call: _Call, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], Any]:
        http = self.http
        url = _httpx_url(call.url)
        request = http.build_request("POST", url, content=call.content, headers=headers, timeout=call.timeout)
        response = await http.send(request, stream=True)
        return response.status_code, response.headers, response

    def body(self, response: httpx.Response) -> AsyncIterator[bytes]:
        return response.aiter_bytes()

    async def release(self, response: httpx.Response) -> None:
        await response.aclose()

    def timed_out(self, exc: BaseException) -> bool:
        return isinstance(exc, httpx.TimeoutException)

    async def get(
        self, url: str, headers: Mapping[str, str], timeout: float | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        response = await self.http.get(url, headers=headers, timeout=httpx.Timeout(timeout))
        return response.status_code, response.headers, response.content

    async def aclose(self) -> None:
        if self.owned:
            await self.http.aclose()


def _async_driver(
    driver: str, http_client: Any, timeout: httpx.Timeout, headers: dict[str, str]
) -> tuple[_AsyncDriver, httpx.AsyncClient | None]:
    """The driver named ``driver`` over ``http_client`` (or a new client of its own holding ``headers``)."""
    if driver == "httpx":
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise ConfigurationError(
                f"http_client must be an httpx.AsyncClient, not {type(http_client).__name__} "
                '(an aiohttp.ClientSession needs driver="aiohttp")'
            )
        http = http_client or httpx.AsyncClient(timeout=timeout, headers=headers)
        return _HttpxDriver(http, http_client is None), http
    if driver == "aiohttp":
        try:
            from ._aiohttp import AiohttpDriver
        except ImportError as exc:
            raise ConfigurationError(
                f'driver="aiohttp" needs aiohttp: pip install "azml-chat[aiohttp]" ({exc})'
            ) from None
        return AiohttpDriver(http_client, timeout.read, headers), None
    raise ConfigurationError(f"driver must be 'httpx' or 'aiohttp', not {driver!r}")


# --- async -----------------------------------------------------------------------------


class AsyncChatClient(_BaseChatClient):
    """Async client for an Azure ML dedicated (``/score``) or serverless (chat completions) endpoint.

    Example::

        async with AsyncChatClient("https://my-ep.eastus.inference.ml.azure.com/score",
                                   api_key=key, formatter="llama") as client:
            reply = await client.chat("Hello!", temperature=0.8, max_tokens=256)
            print(reply.content)

    ``endpoint_url``, ``api_key``, ``api_type``, ``deployment_name`` and ``timeout``
    default to the ``AZUREML_*`` environment variables. ``formatter`` picks the model
    family (``"llama"``, ``"mistral"``, ``"phi"``, ``"text-generation"``, ``"openai"``,
    or a :class:`ChatFormatter`); chat-completions URLs always default to ``"openai"``.
    ``model_kwargs`` are default parameters merged under each call's own. ``timeout``
    (seconds, default 50) bounds each attempt; ``max_retries`` (default 2) bounds
    retries of 408/429/5xx and connection failures. Pass ``http_client`` to share a
    configured ``httpx.AsyncClient`` (the caller then closes it).

    ``driver="aiohttp"`` (extra ``azml-chat[aiohttp]``, asyncio only) moves the bytes
    with aiohttp instead of httpx: same behaviour, several times less CPU per request.
    ``http_client`` may then be a caller-owned ``aiohttp.ClientSession``.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        http_client: httpx.AsyncClient | aiohttp.ClientSession | None = None,
        driver: Literal["httpx", "aiohttp"] = "httpx",
        **settings: Any,
    ) -> None:
        super().__init__(endpoint_url, **settings)
        self._slots: Any = contextlib.nullcontext()
        if self.max_concurrency is not None:
            import anyio

            self._slots = anyio.Semaphore(self.max_concurrency)
        self._owns_http = http_client is None
        self._driver, self._http = _async_driver(driver, http_client, self._httpx_timeout, self._headers)
        if self._owns_http:
            self._call_headers = {}  # the client we built sends them on every request
        self.driver = driver

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless the caller passed its own ``http_client``)."""
        await self._driver.aclose()

    async def chat(
        self,
        messages: MessageInput,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        **params: Any,
    ) -> ChatResponse:
        """Send a chat and return the whole reply.

        ``messages`` is a string (one user turn), a :class:`Message`, a dict, or a list
        of them. ``params`` (``temperature=0.8``, ``max_tokens=512``, ``stop=[...]``,
        ``tools=...``, any model-specific knob) go over the client's ``model_kwargs``
        for this call only; a ``None`` value removes a default.
        """
        call = self._prepare(messages, params, stream=False, timeout=timeout, max_retries=max_retries)
        started = time.monotonic()
        async with self._slots:
            headers, response, sent = await self._send(call)
            try:
                deadline = sent + call.deadline_seconds if call.deadline_seconds else None
                body = await self._read(headers, response, deadline)
            finally:
                await self._driver.release(response)
        self._log_done("reply", len(body), started)
        return _core.parse_reply(self._formatter, body, _core.request_id_of(headers), time.monotonic() - started)

    def stream(
        self,
        messages: MessageInput,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        **params: Any,
    ) -> AsyncChatStream:
        """Stream a reply: ``async with client.stream(...) as stream: async for chunk in stream``.

        Chunks carry text deltas, tool-call fragments, the finish reason and usage;
        ``stream.response`` holds the assembled :class:`ChatResponse` once the stream
        ends. Only failures before the first chunk are retried. Dedicated ``/score``
        endpoints cannot stream: there the whole reply arrives as one chunk.
        ``timeout`` bounds the wait for each piece, not the whole stream.
        """
        call = self._prepare(messages, params, stream=True, timeout=timeout, max_retries=max_retries)
        return AsyncChatStream(self, call)

    async def chat_structured(
        self,
        messages: MessageInput,
        cls: type[_T],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        **params: Any,
    ) -> _T:
        """Ask for a reply shaped like the attrs class ``cls`` and return it as a ``cls`` instance.

        On chat-completions bodies this sends ``response_format=response_format_for(cls)``
        unless a ``response_format`` is given. Raises :class:`StructuredOutputError`
        (holding the reply text) when the reply is not JSON or does not fit ``cls``.
        """
        from .structured import parse_structured

        params = self._structured_params(cls, params)
        reply = await self.chat(messages, timeout=timeout, max_retries=max_retries, **params)
        return parse_structured(reply, cls)

    async def model_info(self) -> ModelInfo:
        """``GET /info`` of a serverless endpoint: model name, type and provider."""
        headers = await self._auth_headers(dict(self._headers))
        driver = self._driver
        try:
            status, response_headers, content = await driver.get(self._endpoint.info_url, headers, self.timeout)
        except driver.errors as exc:
            raise _core.transport_error(exc, timed_out=driver.timed_out(exc)) from exc
        return _model_info(status, response_headers, content)

    async def _auth_headers(self, headers: dict[str, str]) -> dict[str, str]:
        if self._tokens is not None:
            return self._auth(headers, await self._tokens.aget())
        return headers

    async def _send(self, call: _Call) -> tuple[Mapping[str, str], Any, float]:
        """Send until a non-error status arrives or retries run out; returns the headers, the unread
        response and the time its attempt began (``timeout`` bounds each attempt, not the retries before it)."""
        driver = self._driver
        attempt = 0
        debug = logger.isEnabledFor(logging.DEBUG)
        reauthorize = self._tokens is not None  # a 401 on a credential's token gets one new token
        while True:
            headers = call.headers if self._tokens is None else await self._auth_headers(dict(call.headers))
            seen = self._tokens.refreshes if self._tokens is not None else 0
            error: AzureMLChatError
            sent = time.monotonic()
            if debug:
                self._log_attempt(call, attempt)
            try:
                status, response_headers, response = await driver.send(call, headers)
            except driver.errors as exc:
                error = _core.transport_error(exc, timed_out=driver.timed_out(exc))
            else:
                if debug:
                    self._log_status(status, response_headers, sent)
                if status < 400:
                    return response_headers, response, sent
                try:
                    body = await self._read(response_headers, response, None)
                except AzureMLChatError:
                    body = b""
                finally:
                    await driver.release(response)
                error = self._status_error(status, response_headers, body, headers)
            if reauthorize and self._token_rejected(error, seen):
                reauthorize = False
                continue
            delay = self._retry_delay(error, attempt, call)
            import anyio  # loaded on first retry: import time

            await anyio.sleep(delay)
            attempt += 1

    async def _read(self, headers: Mapping[str, str], response: Any, deadline: float | None) -> bytes:
        """Read a whole body, bounded by ``max_response_bytes`` and the call's deadline."""
        driver = self._driver
        limit = self.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in driver.body(response):
                size += len(chunk)
                if size > limit:
                    raise _read_error(headers, limit)
                chunks.append(chunk)
                if deadline is not None and time.monotonic() > deadline:
                    raise _read_error(headers, None)
        except driver.errors as exc:
            timed_out = driver.timed_out(exc)
            request_id = _core.request_id_of(headers)
            raise _core.transport_error(exc, timed_out=timed_out, request_id=request_id) from exc
        return b"".join(chunks)


class AsyncChatStream:
    """A streamed reply: iterate it for :class:`StreamChunk` values; use it as a context manager
    so that leaving early closes the response at once. A stream read to the end leaves its
    connection in the pool for reuse; one left early closes that connection (which also
    tells the server to stop generating) and frees its pool slot, so nothing leaks."""

    def __init__(self, client: AsyncChatClient, call: _Call) -> None:
        self._client = client
        self._call = call
        self._iterator: AsyncIterator[StreamChunk] | None = None
        #: The assembled reply, set when the stream has ended normally.
        self.response: ChatResponse | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if self._iterator is None:
            self._iterator = self._chunks()
        return self._iterator

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]

    async def get_final_response(self) -> ChatResponse:
        """Read what is left of the stream and return the assembled reply."""
        async for _ in self:
            pass
        if self.response is None:
            raise StreamError("the stream was closed or failed before it ended: there is no final response")
        return self.response

    async def _chunks(self) -> AsyncIterator[StreamChunk]:
        started = time.monotonic()
        async with self._client._slots, contextlib.aclosing(self._receive(started)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _receive(self, started: float) -> AsyncGenerator[StreamChunk, None]:
        client, call = self._client, self._call
        driver = client._driver
        headers, response, _ = await client._send(call)
        try:
            request_id = _core.request_id_of(headers)
            if not call.stream or not _is_sse(headers):
                body = await client._read(headers, response, None)
                self.response = _core.parse_reply(client._formatter, body, request_id, time.monotonic() - started)
                yield _response_chunk(self.response)
                return
            state = _core.StreamState(request_id, client.max_response_bytes)
            try:
                async for raw in driver.body(response):  # decoded bytes, as they arrive
                    for chunk in state.feed(raw):
                        yield chunk
                    if state.drained:
                        break
            except driver.errors as exc:
                if not state.done:
                    timed_out = driver.timed_out(exc)
                    raise _core.stream_transport_error(exc, timed_out=timed_out, request_id=request_id) from exc
            self.response = state.finish(time.monotonic() - started)
            client._log_done("stream", state.received, started)
        finally:
            await driver.release(response)


# --- sync ------------------------------------------------------------------------------


class ChatClient(_BaseChatClient):
    """Blocking client with the same settings and behaviour as :class:`AsyncChatClient`.

    Example::

        with ChatClient.from_env() as client:
            print(client.chat("Hello!", max_tokens=256).content)

    Safe to share between threads (the ``httpx.Client`` pool is thread-safe).
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        http_client: httpx.Client | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(endpoint_url, **settings)
        if self._tokens is not None and self._tokens.is_async:
            raise ConfigurationError("an async credential (azure.identity.aio) needs AsyncChatClient")
        self._slots: Any = contextlib.nullcontext()
        if self.max_concurrency is not None:
            self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=self._httpx_timeout, headers=self._headers)
        if self._owns_http:
            self._call_headers = {}  # the client we built sends them on every request

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (unless the caller passed its own ``http_client``)."""
        if self._owns_http:
            self._http.close()

    def chat(
        self,
        messages: MessageInput,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        **params: Any,
    ) -> ChatResponse:
        """Send a chat and return the whole reply; see :meth:`AsyncChatClient.chat`."""
        call = self._prepare(messages, params, stream=False, timeout=timeout, max_retries=max_retries)
        started = time.monotonic()
        with self._slots:
            response, sent = self._send(call)
            try:
                body = self._read(response, sent + call.deadline_seconds if call.deadline_seconds else None)
            finally:
                response.close()
        self._log_done("reply", len(body), started)
        return _core.parse_reply(
            self._formatter, body, _core.request_id_of(response.headers), time.monotonic() - started
        )

    def stream(
        self,
        messages: MessageInput,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        **params: Any,
    ) -> ChatStream:
        """Stream a reply: ``with client.stream(...) as stream: for chunk in stream``;
        see :meth:`AsyncChatClient.stream`."""
        call = self._prepare(messages, params, stream=True, timeout=timeout, max_retries=max_retries)
        return ChatStream(self, call)

    def chat_structured(
        self,
        messages: MessageInput,
        cls: type[_T],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        **params: Any,
    ) -> _T:
        """Ask for a reply shaped like the attrs class ``cls``; see :meth:`AsyncChatClient.chat_structured`."""
        from .structured import parse_structured

        params = self._structured_params(cls, params)
        return parse_structured(self.chat(messages, timeout=timeout, max_retries=max_retries, **params), cls)

    def model_info(self) -> ModelInfo:
        """``GET /info`` of a serverless endpoint: model name, type and provider."""
        headers = self._auth_headers(dict(self._headers))
        try:
            response = self._http.get(self._endpoint.info_url, headers=headers, timeout=self._httpx_timeout)
        except httpx.TransportError as exc:
            raise _core.transport_error(exc, timed_out=isinstance(exc, httpx.TimeoutException)) from exc
        return _model_info(response.status_code, response.headers, response.content)

    def _auth_headers(self, headers: dict[str, str]) -> dict[str, str]:
        if self._tokens is not None:
            return self._auth(headers, self._tokens.get())
        return headers

    def _send(self, call: _Call) -> tuple[httpx.Response, float]:
        attempt = 0
        debug = logger.isEnabledFor(logging.DEBUG)
        reauthorize = self._tokens is not None  # a 401 on a credential's token gets one new token
        while True:
            headers = call.headers if self._tokens is None else self._auth_headers(dict(call.headers))
            seen = self._tokens.refreshes if self._tokens is not None else 0
            request = self._http.build_request(
                "POST", _httpx_url(call.url), content=call.content, headers=headers, timeout=call.timeout
            )
            error: AzureMLChatError
            sent = time.monotonic()
            if debug:
                self._log_attempt(call, attempt)
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                error = _core.transport_error(exc, timed_out=isinstance(exc, httpx.TimeoutException))
            else:
                if debug:
                    self._log_status(response.status_code, response.headers, sent)
                if response.status_code < 400:
                    return response, sent
                try:
                    body = self._read(response, None)
                except AzureMLChatError:
                    body = b""
                finally:
                    response.close()
                error = self._status_error(response.status_code, response.headers, body, headers)
            if reauthorize and self._token_rejected(error, seen):
                reauthorize = False
                continue
            time.sleep(self._retry_delay(error, attempt, call))
            attempt += 1

    def _read(self, response: httpx.Response, deadline: float | None) -> bytes:
        limit = self.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise _read_error(response.headers, limit)
                chunks.append(chunk)
                if deadline is not None and time.monotonic() > deadline:
                    raise _read_error(response.headers, None)
        except httpx.TransportError as exc:
            request_id = _core.request_id_of(response.headers)
            raise _core.transport_error(
                exc, timed_out=isinstance(exc, httpx.TimeoutException), request_id=request_id
            ) from exc
        return b"".join(chunks)


class ChatStream:
    """A streamed reply for :class:`ChatClient`; see :class:`AsyncChatStream`."""

    def __init__(self, client: ChatClient, call: _Call) -> None:
        self._client = client
        self._call = call
        self._iterator: Iterator[StreamChunk] | None = None
        #: The assembled reply, set when the stream has ended normally.
        self.response: ChatResponse | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamChunk]:
        if self._iterator is None:
            self._iterator = self._chunks()
        return self._iterator

    def close(self) -> None:
        """Stop reading and release the connection."""
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]

    def get_final_response(self) -> ChatResponse:
        """Read what is left of the stream and return the assembled reply."""
        for _ in self:
            pass
        if self.response is None:
            raise StreamError("the stream was closed or failed before it ended: there is no final response")
        return self.response

    def _chunks(self) -> Iterator[StreamChunk]:
        started = time.monotonic()
        with self._client._slots:
            yield from self._receive(started)  # closing this generator closes the inner one too

    def _receive(self, started: float) -> Iterator[StreamChunk]:
        client, call = self._client, self._call
        response, _ = client._send(call)
        try:
            request_id = _core.request_id_of(response.headers)
            if not call.stream or not _is_sse(response.headers):
                body = client._read(response, None)
                self.response = _core.parse_reply(client._formatter, body, request_id, time.monotonic() - started)
                yield _response_chunk(self.response)
                return
            state = _core.StreamState(request_id, client.max_response_bytes)
            try:
                for raw in response.iter_bytes():  # decoded bytes, as they arrive
                    yield from state.feed(raw)
                    if state.drained:
                        break
            except httpx.TransportError as exc:
                if not state.done:
                    timed_out = isinstance(exc, httpx.TimeoutException)
                    raise _core.stream_transport_error(exc, timed_out=timed_out, request_id=request_id) from exc
            self.response = state.finish(time.monotonic() - started)
            client._log_done("stream", state.received, started)
        finally:
            response.close()


def _model_info(status: int, headers: Mapping[str, str], content: bytes) -> ModelInfo:
    request_id = _core.request_id_of(headers)
    if status >= 400:
        raise _core.status_error(status, headers, content)
    payload = _core.decode_json(content, request_id)
    if not isinstance(payload, dict):
        excerpt = content[:200].decode("utf-8", "replace")
        raise ResponseFormatError("/info did not return a JSON object", excerpt=excerpt, request_id=request_id)
    return ModelInfo(payload.get("model_name"), payload.get("model_type"), payload.get("model_provider_name"), payload)
