"""Drivers over httpx2 (the default) or httpx (when the caller hands us an httpx client).

httpx2 is the maintained fork of httpx 0.28.1 with the same API, so one pair of driver
classes serves both: each instance is bound to ONE library module and never mixes the
two. Clients they create hold the default headers, so each request carries only its own.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from ..errors import AzureMLChatError, ClientClosedError, ConfigurationError
from .base import Request, Sent, translate_error

__all__ = ["AsyncHttpxTransport", "SyncHttpxTransport", "library_of"]


def library_of(http_client: Any) -> ModuleType | None:
    """The httpx-like module (``httpx2`` or ``httpx``) whose client ``http_client`` is, if any,
    also for a subclass defined elsewhere (``httpx_aiohttp.HttpxAiohttpClient``, a caller's own)."""
    for cls in type(http_client).__mro__:
        module = cls.__module__.split(".")[0]
        if module in ("httpx2", "httpx"):
            import importlib

            return importlib.import_module(module)
    return None


@functools.lru_cache(maxsize=64)
def _timeout(library: ModuleType, seconds: float | None) -> Any:
    return library.Timeout(seconds)


@functools.lru_cache(maxsize=64)
def _url(library: ModuleType, url: str) -> Any:
    """The URL parsed once: httpx parses a string URL on every request (~15 µs)."""
    return library.URL(url)


@functools.lru_cache(maxsize=64)
def _timeout_extension(library: ModuleType, seconds: float | None) -> dict[str, float | None]:
    """The request's ``timeout`` extension, as ``build_request`` makes it (read, never changed, by httpcore)."""
    timeouts: dict[str, float | None] = _timeout(library, seconds).as_dict()
    return timeouts


class _Body:
    """A response, the iterator over its decoded body (made on the first read), and the request
    (named in read errors)."""

    __slots__ = ("pieces", "request", "response")

    def __init__(self, response: Any, request: Request) -> None:
        self.response = response
        self.request = request
        self.pieces: Any = None


class _HttpxBase:
    def __init__(self, library: ModuleType, client: Any, owned: bool) -> None:
        self.library = library
        self.client = client
        self.owned = owned
        self.holds_default_headers = owned
        self.closed = False
        self._undecodable = (library.DecodingError,)  # a RequestError, not a TransportError
        self._errors = (library.TransportError, *self._undecodable)
        self._timeouts = (library.TimeoutException,)
        #: Our own client's headers (httpx's defaults and ours), encoded once: name -> (raw name, raw value).
        self._encoded = {name.decode(): (name, value) for name, value in client.headers.raw} if owned else {}
        self._encoded_list = list(self._encoded.values())

    def _read_error(self, handle: _Body, exc: BaseException) -> AzureMLChatError:
        return translate_error(handle.request, exc, self._timeouts, reading=True, undecodable=self._undecodable)

    def _build(self, request: Request) -> Any:
        if self.closed:
            raise ClientClosedError("this client has been closed: create a new one (or leave the `with` block later)")
        library = self.library
        if not self.owned:  # a caller's client: its own headers, cookies and settings apply
            return self.client.build_request(
                request.method,
                _url(library, request.url),
                content=request.content,
                headers=request.headers,
                timeout=_timeout(library, request.timeout),
            )
        # Our client: the request is built directly from its pre-encoded headers and the request's
        # own, rather than by build_request merging header dicts (~8 µs a request; no cookies kept).
        own = request.headers
        defaults = self._encoded_list
        if not own.keys().isdisjoint(self._encoded):  # e.g. a stream's accept: the request's value wins
            defaults = [pair for name, pair in self._encoded.items() if name not in own]
        return library.Request(
            request.method,
            _url(library, request.url),
            content=request.content,
            headers=[*defaults, *[(name.encode(), value.encode()) for name, value in own.items()]],
            extensions={"timeout": _timeout_extension(library, request.timeout)},
        )


class SyncHttpxTransport(_HttpxBase):
    """Blocking driver over ``httpx2.Client`` or ``httpx.Client``."""

    def __init__(
        self, library: ModuleType, client: Any, timeout: float | None, default_headers: Mapping[str, str]
    ) -> None:
        if client is not None and not isinstance(client, library.Client):
            raise ConfigurationError(
                f"http_client must be an httpx2.Client or httpx.Client, not {type(client).__name__}"
            )
        owned = client is None
        if owned:
            client = library.Client(timeout=_timeout(library, timeout), headers=dict(default_headers))
        super().__init__(library, client, owned)

    def send(self, request: Request) -> Sent:
        built = self._build(request)
        try:
            response = self.client.send(built, stream=True)
        except self._errors as exc:
            raise translate_error(request, exc, self._timeouts) from exc
        return response.status_code, response.headers, _Body(response, request)

    def read(self, handle: _Body) -> bytes:
        if handle.pieces is None:
            handle.pieces = handle.response.iter_bytes()
        try:
            return next(handle.pieces, b"")
        except self._errors as exc:
            raise self._read_error(handle, exc) from exc

    def release(self, handle: _Body) -> None:
        handle.response.close()

    def close(self) -> None:
        self.closed = True
        if self.owned:
            self.client.close()


class AsyncHttpxTransport(_HttpxBase):
    """Async driver over ``httpx2.AsyncClient`` or ``httpx.AsyncClient`` (asyncio and trio).

    A client of our own is bound to the asyncio event loop it was first used on; used
    from a new loop (a second ``asyncio.run()``), it starts a fresh pool there, since the
    old pool's connections belong to a loop that is gone.
    """

    def __init__(
        self, library: ModuleType, client: Any, timeout: float | None, default_headers: Mapping[str, str]
    ) -> None:
        if client is not None and not isinstance(client, library.AsyncClient):
            hint = ' (an aiohttp.ClientSession needs driver="aiohttp")' if "aiohttp" in type(client).__module__ else ""
            raise ConfigurationError(
                f"http_client must be an httpx2.AsyncClient or httpx.AsyncClient, not {type(client).__name__}{hint}"
            )
        owned = client is None
        self._timeout = timeout
        self._defaults = dict(default_headers)
        super().__init__(library, client if client is not None else self._new_client(library), owned)
        self._loop: object | None = None

    def _new_client(self, library: ModuleType) -> Any:
        return library.AsyncClient(timeout=_timeout(library, self._timeout), headers=self._defaults)

    def _check_loop(self) -> None:
        try:
            loop: object | None = asyncio.get_running_loop()
        except RuntimeError:  # trio: no asyncio loop to be bound to
            return
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            if not self.owned:
                raise ClientClosedError(
                    "this AsyncChatClient's http_client was used on another event loop: an httpx AsyncClient "
                    "cannot move between loops; create the client (and its http_client) inside each loop"
                )
            self.client = self._new_client(self.library)  # the old pool's loop has ended
            self._loop = loop

    async def send(self, request: Request) -> Sent:
        self._check_loop()
        built = self._build(request)
        try:
            response = await self.client.send(built, stream=True)
        except self._errors as exc:
            raise translate_error(request, exc, self._timeouts) from exc
        return response.status_code, response.headers, _Body(response, request)

    async def read(self, handle: _Body) -> bytes:
        if handle.pieces is None:
            handle.pieces = handle.response.aiter_bytes()
        try:
            piece: bytes = await handle.pieces.__anext__()  # cheaper per piece than anext(pieces, b"")
        except StopAsyncIteration:
            return b""
        except self._errors as exc:
            raise self._read_error(handle, exc) from exc
        return piece

    async def release(self, handle: _Body) -> None:
        await handle.response.aclose()

    async def aclose(self) -> None:
        self.closed = True
        if not self.owned:
            return
        try:
            loop: object | None = asyncio.get_running_loop()
        except RuntimeError:  # trio
            loop = self._loop
        if self._loop is None or loop is self._loop:
            await self.client.aclose()
        # else the pool's connections belong to a loop that has ended (closed from a later
        # asyncio.run()): there is nothing to await there; they are dropped with the pool
