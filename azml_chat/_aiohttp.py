"""The optional aiohttp driver of :class:`~azml_chat.AsyncChatClient` (``driver="aiohttp"``).

It moves bytes with an ``aiohttp.ClientSession``; every decision (retries, error
mapping, stream assembly) stays in the client and :mod:`azml_chat._core`, exactly as
for the default httpx driver. Installed with the ``azml-chat[aiohttp]`` extra; this
module is imported only when the driver is chosen. asyncio only (aiohttp does not
run on trio). Unlike httpx it ignores ``HTTP(S)_PROXY``: pass a configured
``aiohttp.ClientSession`` as ``http_client`` to go through a proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
from yarl import URL

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .client import _Call

__all__ = ["AiohttpDriver"]

#: Same pool size as httpx's default, so both drivers behave alike under load.
_MAX_CONNECTIONS = 100


def _client_timeout(seconds: float | None) -> aiohttp.ClientTimeout:
    # Like httpx.Timeout(seconds): bounds connecting (pool wait included) and each read, not the whole reply.
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=seconds, sock_read=seconds)


class AiohttpDriver:
    """Async I/O over ``aiohttp``: send a request, stream its body, release its connection."""

    errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError)

    def __init__(
        self, session: aiohttp.ClientSession | None, timeout: float | None, headers: Mapping[str, str]
    ) -> None:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError(
                f'driver="aiohttp" takes an aiohttp.ClientSession as http_client, not {type(session).__name__}'
            )
        self._session = session
        self.owned = session is None
        self._headers = dict(headers)  # default headers of a session we create
        self._timeout_seconds = timeout
        self._timeout = _client_timeout(timeout)
        self._urls: dict[str, URL] = {}
        self._closed = False

    def _open(self, url: str) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop (aiohttp binds a session to its loop).
        if self._closed:
            raise RuntimeError("the client has been closed: create a new one")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError('driver="aiohttp" runs on asyncio only; use the default httpx driver') from None
        # The same trust store as the httpx driver (certifi, or SSL_CERT_FILE / SSL_CERT_DIR).
        ssl = httpx.create_ssl_context() if url.startswith("https:") else True
        connector = aiohttp.TCPConnector(limit=_MAX_CONNECTIONS, ssl=ssl)
        # No trust_env: in aiohttp it costs two thread hops per request (netrc, proxy lookup)
        # and may add netrc credentials; a caller needing a proxy passes its own session.
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, cookie_jar=aiohttp.DummyCookieJar()
        )
        return self._session

    def _url(self, url: str) -> URL:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = URL(url)
        return parsed

    async def send(self, call: _Call, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], Any]:
        """POST the call; return status, headers and the unread response."""
        session = self._session or self._open(call.url)
        seconds = call.deadline_seconds
        timeout = self._timeout if seconds == self._timeout_seconds else _client_timeout(seconds)
        response = await session.post(
            self._url(call.url), data=call.content, headers=headers, timeout=timeout, allow_redirects=False
        )
        return response.status, response.headers, response

    @staticmethod
    def body(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The body (decompressed), piece by piece as it arrives."""
        return response.content.iter_any()

    @staticmethod
    async def release(response: aiohttp.ClientResponse) -> None:
        """Give the connection back to the pool, or close it if the body was not read to the end."""
        response.release()

    @staticmethod
    def timed_out(exc: BaseException) -> bool:
        return isinstance(exc, asyncio.TimeoutError)

    async def get(
        self, url: str, headers: Mapping[str, str], timeout: float | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """A small GET, read whole."""
        session = self._session or self._open(url)
        async with session.get(self._url(url), headers=headers, timeout=_client_timeout(timeout)) as response:
            return response.status, response.headers, await response.read()

    async def aclose(self) -> None:
        """Close the session if this driver created it."""
        self._closed = True
        if self.owned and self._session is not None:
            session, self._session = self._session, None
            await session.close()
