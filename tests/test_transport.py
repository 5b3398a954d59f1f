"""The transport seam without sockets: each library's exceptions mapped to ours, and the httpx2 /
httpx drivers over their ``MockTransport`` (send, read, release, close, the per-request time-out).

The drivers over real HTTP are exercised by every client suite (``runner`` fixture, fault matrix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import aiohttp
import anyio
import httpx
import httpx2
import pytest

from azml_chat import (
    APIConnectionError,
    APITimeoutError,
    AzureMLChatError,
    ClientClosedError,
    ConfigurationError,
    ResponseFormatError,
)
from azml_chat._transport import aiohttp as aiohttp_driver
from azml_chat._transport.base import Request, translate_error
from azml_chat._transport.httpx import AsyncHttpxTransport, SyncHttpxTransport, library_of

URL = "https://ep.eastus.models.ai.azure.com/v1/chat/completions"
KEY = "sk-transport-secret"
LIBRARIES = [httpx2, httpx]


def request(url: str = URL, timeout: float | None = 5.0) -> Request:
    headers = {"authorization": f"Bearer {KEY}", "x-ms-client-request-id": "rid-1"}
    return Request("POST", url, headers, b'{"messages": []}', timeout)


def payload_error(cause: BaseException) -> aiohttp.ClientPayloadError:
    """What aiohttp raises when a body does not match its content-encoding."""
    error = aiohttp.ClientPayloadError(f"400, message:\n  {cause}")
    error.__cause__ = cause
    return error


def raising(exc: BaseException) -> Callable[[], None]:
    def fail() -> None:
        raise exc

    return fail


def httpx_cases(library: ModuleType) -> list[Any]:
    name = library.__name__
    timeout = "ep.eastus.models.ai.azure.com:443 (timeout=5s; raise it with timeout= or AZUREML_TIMEOUT"
    return [
        pytest.param(
            library, library.ConnectTimeout("connect timed out"), False, APITimeoutError,
            f"timed out connecting or waiting for the reply from {timeout}", id=f"{name}-connect-timeout",
        ),
        pytest.param(
            library, library.PoolTimeout(""), False, APITimeoutError, "): PoolTimeout", id=f"{name}-pool-timeout"
        ),
        pytest.param(
            library, library.ReadTimeout("read timed out"), True, APITimeoutError,
            f"timed out waiting for the reply body from {timeout}", id=f"{name}-read-timeout",
        ),
        pytest.param(
            library, library.ConnectError("[Errno 111] Connection refused"), False, APIConnectionError,
            "could not connect to ep.eastus.models.ai.azure.com:443: [Errno 111] Connection refused",
            id=f"{name}-refused",
        ),
        pytest.param(
            library, library.RemoteProtocolError("peer closed connection"), True, APIConnectionError,
            "the connection broke while reading the reply from ep.eastus.models.ai.azure.com:443: peer closed",
            id=f"{name}-broken",
        ),
        pytest.param(
            library, library.ReadError(""), True, APIConnectionError, "azure.com:443: ReadError", id=f"{name}-empty"
        ),
        pytest.param(
            library, library.DecodingError("Error -3 while decompressing data"), True, ResponseFormatError,
            "the reply from ep.eastus.models.ai.azure.com:443 does not match its content-encoding: Error -3",
            id=f"{name}-undecodable",
        ),
    ]  # fmt: skip


AIOHTTP_CASES = [
    pytest.param(TimeoutError(), False, APITimeoutError, "(timeout=5s; raise it", id="timeout"),
    pytest.param(
        aiohttp.ConnectionTimeoutError("Connection timeout to host"), False, APITimeoutError,
        "timed out connecting or waiting for the reply from ep.eastus", id="connect-timeout",
    ),
    pytest.param(
        aiohttp.SocketTimeoutError("Timeout on reading data from socket"), True, APITimeoutError,
        "timed out waiting for the reply body from ep.eastus", id="read-timeout",
    ),
    pytest.param(
        aiohttp.ClientOSError(111, "Connect call failed"), False, APIConnectionError,
        "could not connect to ep.eastus.models.ai.azure.com:443: [Errno 111] Connect call failed", id="refused",
    ),
    pytest.param(
        aiohttp.ServerDisconnectedError(), True, APIConnectionError,
        "the connection broke while reading the reply from ep.eastus.models.ai.azure.com:443: Server disconnected",
        id="disconnected",
    ),
    pytest.param(
        aiohttp.ClientPayloadError("Response payload is not completed"), True, APIConnectionError,
        "the connection broke while reading", id="incomplete",
    ),
    pytest.param(
        payload_error(aiohttp.http_exceptions.ContentEncodingError("Can not decode content-encoding: gzip")),
        True, ResponseFormatError, "does not match its content-encoding", id="undecodable",
    ),
]  # fmt: skip


Errors = tuple[type[BaseException], ...]


def translated(
    exc: BaseException,
    errors: Errors,
    timeouts: Errors,
    reading: bool = False,
    undecodable: Errors = (),
    sent: Request | None = None,
) -> BaseException:
    """What ``exc``, raised by the library for ``sent``, comes out of a driver as: the drivers
    catch ``errors`` (``except errors as exc: raise translate_error(...) from exc``)."""
    try:
        try:
            raise exc
        except errors as caught:
            sent = sent or request()
            raise translate_error(sent, caught, timeouts, reading=reading, undecodable=undecodable) from caught
    except BaseException as out:
        return out


def check(raised: BaseException, error: type[AzureMLChatError], match: str, original: BaseException) -> None:
    assert type(raised) is error
    assert match in str(raised)
    assert raised.__cause__ is original
    assert KEY not in str(raised)


@pytest.mark.parametrize(("library", "exc", "reading", "error", "match"), [*httpx_cases(httpx2), *httpx_cases(httpx)])
def test_httpx_exceptions(
    library: ModuleType, exc: Exception, reading: bool, error: type[AzureMLChatError], match: str
) -> None:
    errors = (library.TransportError, library.DecodingError)
    raised = translated(exc, errors, (library.TimeoutException,), reading, (library.DecodingError,))
    check(raised, error, match, exc)


@pytest.mark.parametrize(("exc", "reading", "error", "match"), AIOHTTP_CASES)
def test_aiohttp_exceptions(exc: Exception, reading: bool, error: type[AzureMLChatError], match: str) -> None:
    raised = translated(exc, aiohttp_driver.ERRORS, aiohttp_driver.TIMEOUTS, reading, aiohttp_driver.UNDECODABLE)
    check(raised, error, match, exc)


@pytest.mark.parametrize(
    ("url", "timeout", "named"),
    [
        ("http://127.0.0.1:8080/score", 2.5, "127.0.0.1:8080 (timeout=2.5s;"),
        ("http://localhost/score", None, "localhost:80 (no time-out;"),
        ("https://[::1]:9443/v1/chat/completions", 50.0, "::1:9443 (timeout=50s;"),
    ],
)
def test_timeout_messages_name_the_host_and_the_setting(url: str, timeout: float | None, named: str) -> None:
    raised = translated(
        httpx2.ReadTimeout("slow"), (httpx2.TransportError,), (httpx2.TimeoutException,), sent=request(url, timeout)
    )
    assert isinstance(raised, APITimeoutError)
    assert named in str(raised)
    assert "pass timeout=None for none" in str(raised)


@pytest.mark.parametrize("library", [httpx2, httpx])
def test_other_exceptions_pass_through(library: ModuleType) -> None:
    caught = {"httpx": SyncHttpxTransport(library, None, 5.0, {})._errors, "aiohttp": aiohttp_driver.ERRORS}
    for errors in caught.values():  # what each driver's except clause catches
        for exc in (KeyError("not the library's"), library.InvalidURL("bad")):  # bugs to see, not to retry
            assert translated(exc, errors, ()) is exc


def test_the_request_value_never_shows_its_headers() -> None:
    shown = repr(request())
    assert KEY not in shown
    assert shown == f"Request(POST {URL}, 16 bytes, timeout=5.0)"


# --- the httpx2 / httpx drivers over MockTransport ----------------------------------------------


class Server:
    """A MockTransport handler: records requests and answers with ``pieces`` (an exception raises)."""

    def __init__(self, library: ModuleType, *pieces: bytes | Exception, asynchronous: bool = False) -> None:
        self.library = library
        self.asynchronous = asynchronous
        self.pieces = pieces
        self.requests: list[Any] = []
        self.fail: Exception | None = None

    def body(self) -> Iterator[bytes]:
        for piece in self.pieces:
            if isinstance(piece, Exception):
                raise piece
            yield piece

    async def abody(self) -> Any:
        for piece in self.body():
            yield piece

    def __call__(self, sent: Any) -> Any:
        self.requests.append(sent)
        if self.fail is not None:
            raise self.fail
        stream = self.abody() if self.asynchronous else self.body()
        return self.library.Response(200, headers={"x-request-id": "srv-1"}, content=stream)


def read_all(transport: SyncHttpxTransport, handle: Any) -> list[bytes]:
    pieces = []
    while piece := transport.read(handle):
        pieces.append(piece)
    return pieces


@pytest.mark.parametrize("library", LIBRARIES)
def test_sync_driver_send_read_release(library: ModuleType) -> None:
    server = Server(library, b'{"a"', b": 1}")
    http = library.Client(transport=library.MockTransport(server))
    transport = SyncHttpxTransport(library, http, 50.0, {"x-default": "yes"})
    assert not transport.holds_default_headers  # a caller's client: each request carries the defaults

    status, headers, handle = transport.send(request(timeout=7.0))
    assert (status, headers["x-request-id"]) == (200, "srv-1")
    assert read_all(transport, handle) == [b'{"a"', b": 1}"]
    assert transport.read(handle) == b""  # the end stays the end
    transport.release(handle)
    assert handle.response.is_closed
    (sent,) = server.requests
    assert (sent.method, str(sent.url), sent.content) == ("POST", URL, b'{"messages": []}')
    assert sent.headers["x-ms-client-request-id"] == "rid-1"
    assert sent.extensions["timeout"] == {"connect": 7.0, "read": 7.0, "write": 7.0, "pool": 7.0}
    transport.close()
    assert not http.is_closed  # the caller's client stays open
    with pytest.raises(ClientClosedError, match="has been closed"):
        transport.send(request())


@pytest.mark.parametrize("library", LIBRARIES)
def test_sync_driver_maps_send_and_read_failures(library: ModuleType) -> None:
    server = Server(library, b"partial", library.ReadError("connection reset"))
    transport = SyncHttpxTransport(library, library.Client(transport=library.MockTransport(server)), 5.0, {})
    _, _, handle = transport.send(request())
    assert transport.read(handle) == b"partial"
    with pytest.raises(APIConnectionError, match=r"the connection broke while reading the reply from .*: connection"):
        transport.read(handle)
    transport.release(handle)
    server.fail = library.ConnectTimeout("timed out")
    with pytest.raises(APITimeoutError, match="timed out connecting or waiting for the reply"):
        transport.send(request())


@pytest.mark.parametrize("library", LIBRARIES)
def test_async_driver_send_read_release(library: ModuleType) -> None:
    async def main() -> None:
        server = Server(library, b"one", b"two", library.ReadTimeout("slow"), asynchronous=True)
        http = library.AsyncClient(transport=library.MockTransport(server))
        transport = AsyncHttpxTransport(library, http, 50.0, {})
        status, _, handle = await transport.send(request(timeout=None))
        assert status == 200
        assert [await transport.read(handle), await transport.read(handle)] == [b"one", b"two"]
        with pytest.raises(APITimeoutError, match=r"timed out waiting for the reply body .* \(no time-out;"):
            await transport.read(handle)
        await transport.release(handle)
        assert handle.response.is_closed
        assert server.requests[0].extensions["timeout"] == {"connect": None, "read": None, "write": None, "pool": None}
        server.fail = library.ConnectError("refused")
        with pytest.raises(APIConnectionError, match=r"could not connect to .*: refused"):
            await transport.send(request())
        await transport.aclose()
        assert not http.is_closed
        with pytest.raises(ClientClosedError):
            await transport.send(request())
        await http.aclose()

    anyio.run(main)


class ClientSession:
    """Stands in for an aiohttp session (only its type's module is looked at)."""


ClientSession.__module__ = "aiohttp.client"


def test_drivers_refuse_clients_of_another_kind() -> None:
    with pytest.raises(ConfigurationError, match=r"must be an httpx2\.Client or httpx\.Client, not AsyncClient"):
        SyncHttpxTransport(httpx2, httpx2.AsyncClient(), 5.0, {})
    with pytest.raises(ConfigurationError, match=r'an aiohttp\.ClientSession needs driver="aiohttp"'):
        AsyncHttpxTransport(httpx2, ClientSession(), 5.0, {})
    with httpx.Client() as other, pytest.raises(ConfigurationError, match=r"httpx\.Client, not Client"):
        SyncHttpxTransport(httpx2, other, 5.0, {})  # the two libraries are never mixed


class TracingClient(httpx.AsyncClient):
    """A caller's own subclass, defined outside httpx (as httpx_aiohttp.HttpxAiohttpClient is)."""


def test_library_of_a_client() -> None:
    with httpx2.Client() as ours, httpx.Client() as theirs:
        assert library_of(ours) is httpx2
        assert library_of(theirs) is httpx
    assert library_of(TracingClient()) is httpx
    assert library_of(ClientSession()) is None


def test_own_clients_hold_the_default_headers() -> None:
    transport = SyncHttpxTransport(httpx2, None, 5.0, {"authorization": f"Bearer {KEY}", "x-team": "red"})
    try:
        assert transport.holds_default_headers
        assert transport.client.headers["x-team"] == "red"
        assert transport.client.timeout.read == 5.0
    finally:
        transport.close()
    assert transport.client.is_closed


@pytest.mark.parametrize("library", LIBRARIES)
def test_our_own_clients_requests_are_built_from_pre_encoded_headers(library: ModuleType) -> None:
    """Our own client's request: its default headers once each, the request's own winning over
    them (a stream's accept), host and length added, the per-request time-out set."""
    defaults = {"accept": "application/json", "user-agent": "azml-chat/test", "authorization": f"Bearer {KEY}"}
    transport = SyncHttpxTransport(library, None, 50.0, defaults)
    server = Server(library, b"{}")
    own = transport.client
    transport.client = library.Client(transport=library.MockTransport(server), headers=own.headers)
    own.close()
    try:
        streamed = Request("POST", URL, {"accept": "text/event-stream", "x-ms-client-request-id": "r1"}, b"{}", 3.0)
        _, _, handle = transport.send(streamed)
        transport.release(handle)
    finally:
        transport.close()
    (sent,) = server.requests
    names = [name.decode().lower() for name, _ in sent.headers.raw]
    assert len(names) == len(set(names)), names  # nothing twice
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["user-agent"] == "azml-chat/test"
    assert sent.headers["x-ms-client-request-id"] == "r1"
    assert (sent.headers["host"], sent.headers["content-length"]) == ("ep.eastus.models.ai.azure.com", "2")
    assert sent.extensions["timeout"] == {"connect": 3.0, "read": 3.0, "write": 3.0, "pool": 3.0}


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_callers_client_keeps_its_own_headers(library: ModuleType) -> None:
    server = Server(library, b"{}")
    http = library.Client(transport=library.MockTransport(server), headers={"x-tenant": "t1", "accept": "*/*"})
    transport = SyncHttpxTransport(library, http, 50.0, {})
    _, _, handle = transport.send(Request("POST", URL, {"accept": "application/json"}, b"{}", 5.0))
    transport.release(handle)
    (sent,) = server.requests
    assert (sent.headers["x-tenant"], sent.headers["accept"]) == ("t1", "application/json")
    http.close()
