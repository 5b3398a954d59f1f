"""The optional aiohttp driver of :class:`~azml_chat.AsyncChatClient` (``driver="aiohttp"``).

Installed with the ``azml-chat[aiohttp]`` extra and imported only when chosen; asyncio
only (aiohttp does not run on trio). Like the httpx drivers it honours ``HTTP(S)_PROXY``
and ``NO_PROXY``, looked up once per URL rather than per request.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping

import aiohttp
from yarl import URL

from ..errors import ClientClosedError, ConfigurationError
from .base import Request, Sent, translate_error

__all__ = ["ERRORS", "TIMEOUTS", "UNDECODABLE", "AiohttpTransport"]

#: Same pool size as httpx's default, so the drivers behave alike under load.
_MAX_CONNECTIONS = 100
#: aiohttp's transport failures, the time-outs among them, and the cause of an undecodable body.
ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
TIMEOUTS = (asyncio.TimeoutError,)
UNDECODABLE = (aiohttp.http_exceptions.ContentEncodingError,)


def _client_timeout(seconds: float | None, whole_reply: bool) -> aiohttp.ClientTimeout:
    if whole_reply:
        # The core bounds a chat() reply as a whole by the same time-out, so one timer for the
        # exchange does: aiohttp re-arms its per-read timer on every piece (~26k instructions a request).
        return aiohttp.ClientTimeout(total=seconds)
    # Like httpx.Timeout(seconds): bounds connecting (pool wait included) and each read, not the whole reply.
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=seconds, sock_read=seconds)


def _proxy_for(url: URL) -> str | None:
    """The proxy ``HTTP(S)_PROXY``/``NO_PROXY`` name for ``url`` (as httpx's ``trust_env``)."""
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(url.host or ""):
        return None
    return proxies.get(url.scheme) or proxies.get("all")


class AiohttpTransport:
    """Async driver over an ``aiohttp.ClientSession`` (ours, created on first use, or the caller's)."""

    holds_default_headers = True

    def __init__(
        self, session: aiohttp.ClientSession | None, timeout: float | None, default_headers: Mapping[str, str]
    ) -> None:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError(
                f'driver="aiohttp" takes an aiohttp.ClientSession as http_client, not {type(session).__name__}'
            )
        self.owned = session is None
        self.holds_default_headers = self.owned
        self.session = session
        self._headers = dict(default_headers)
        self._timeout_seconds = timeout
        self._timeouts = (_client_timeout(timeout, False), _client_timeout(timeout, True))  # per read, whole
        self._urls: dict[str, tuple[URL, str | None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use inside the running loop (aiohttp binds a session to its loop), and
        # again on a new loop (a second asyncio.run()): the old one's loop has ended.
        if self.closed:
            raise ClientClosedError("this client has been closed: create a new one (or leave the `with` block later)")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError('driver="aiohttp" runs on asyncio only; use the default driver') from None
        if self.session is not None and not self.owned:
            return self.session
        import ssl

        self._loop = loop
        # TLS verified against the default trust store, as httpx2 does; SSL_CERT_FILE/DIR respected by ssl.
        connector = aiohttp.TCPConnector(limit=_MAX_CONNECTIONS, ssl=ssl.create_default_context())
        # No trust_env: in aiohttp it costs two thread hops per request (netrc, proxy lookup);
        # proxies are looked up once per URL in _url instead.
        self.session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, cookie_jar=aiohttp.DummyCookieJar()
        )
        return self.session

    def _url(self, url: str) -> tuple[URL, str | None]:
        found = self._urls.get(url)
        if found is None:
            parsed = URL(url)
            found = self._urls[url] = (parsed, _proxy_for(parsed))
        return found

    async def send(self, request: Request) -> Sent:
        session = self.session
        if session is None or self.closed or (self.owned and self._loop is not asyncio.get_running_loop()):
            session = self._open()
        url, proxy = self._url(request.url)
        seconds = request.timeout
        whole = request.whole_reply
        timeout = self._timeouts[whole] if seconds == self._timeout_seconds else _client_timeout(seconds, whole)
        try:
            response = await session.request(
                request.method,
                url,
                data=request.content,
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
                proxy=proxy,
            )
        except ERRORS as exc:
            raise translate_error(request, exc, TIMEOUTS) from exc
        return response.status, response.headers, (response, request)  # the request: for read errors

    async def read(self, handle: tuple[aiohttp.ClientResponse, Request]) -> bytes:
        try:
            return await handle[0].content.readany()
        except ERRORS as exc:
            raise translate_error(handle[1], exc, TIMEOUTS, reading=True, undecodable=UNDECODABLE) from exc

    async def release(self, handle: tuple[aiohttp.ClientResponse, Request]) -> None:
        handle[0].release()

    async def aclose(self) -> None:
        self.closed = True
        if self.owned and self.session is not None:
            session, self.session = self.session, None
            await session.close()
