"""The request value, the transport protocols, and the one mapping of library errors to ours.

A transport moves bytes. It sends a :class:`Request`, hands back the status, the headers
and an opaque handle for the unread body, reads that body piece by piece, and releases
the handle. Every decision (retries, limits, parsing) belongs to :mod:`azml_chat._core`.

Who releases what (as httpx's ``BaseTransport.handle_request`` states it): ``send``
returns a handle whose connection stays checked out of the pool until ``release(handle)``
is called. The caller of ``send`` must call ``release`` exactly once for every handle it
got, on every path (an error, an early exit, a cancellation). ``release`` returns the
connection to the pool when the body was read to its end and closes the connection
otherwise (which also tells the server to stop generating). ``send`` itself releases
everything when it raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..errors import APIConnectionError, APITimeoutError, AzureMLChatError, ResponseFormatError

__all__ = ["AsyncTransport", "Request", "SyncTransport", "translate_error"]


class Request:
    """One HTTP request, as plain values: what every driver needs and nothing else.

    ``timeout`` (seconds, ``None`` for none) bounds connecting, waiting in the pool and
    each read, as ``httpx.Timeout(timeout)`` does. ``whole_reply`` says the caller also
    bounds the whole exchange by ``timeout`` (a ``chat()`` reply): a driver whose per-read
    timer is costly may then use one deadline for the exchange instead.
    """

    __slots__ = ("content", "headers", "method", "timeout", "url", "whole_reply")

    def __init__(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        timeout: float | None,
        whole_reply: bool = False,
    ) -> None:
        self.method: str = method
        self.url: str = url
        self.headers: Mapping[str, str] = headers
        self.content: bytes | None = content
        self.timeout: float | None = timeout
        self.whole_reply: bool = whole_reply

    def __repr__(self) -> str:  # never the headers: they hold the key
        return f"Request({self.method} {self.url}, {len(self.content or b'')} bytes, timeout={self.timeout})"


#: What ``send`` returns: the status, the headers (names looked up in lower case) and the body handle.
Sent = tuple[int, Mapping[str, str], Any]


class SyncTransport(Protocol):
    """The blocking transport of :class:`~azml_chat.ChatClient` (see the module docstring)."""

    #: Whether the transport's own HTTP client already sends the default headers.
    holds_default_headers: bool

    def send(self, request: Request) -> Sent:
        """Send ``request``; raise :class:`APIConnectionError` when no reply arrived."""
        ...

    def read(self, handle: Any) -> bytes:
        """The next piece of the (decoded) body; ``b""`` at its end."""
        ...

    def release(self, handle: Any) -> None:
        """Give the connection back (body read to the end) or close it (see the module docstring)."""
        ...

    def close(self) -> None:
        """Close the pool if this transport created it."""
        ...


class AsyncTransport(Protocol):
    """The async transport of :class:`~azml_chat.AsyncChatClient` (see the module docstring)."""

    #: Whether the transport's own HTTP client already sends the default headers.
    holds_default_headers: bool

    async def send(self, request: Request) -> Sent:
        """Send ``request``; raise :class:`APIConnectionError` when no reply arrived."""
        ...

    async def read(self, handle: Any) -> bytes:
        """The next piece of the (decoded) body; ``b""`` at its end."""
        ...

    async def release(self, handle: Any) -> None:
        """Give the connection back (body read to the end) or close it (see the module docstring)."""
        ...

    async def aclose(self) -> None:
        """Close the pool if this transport created it."""
        ...


def where(url: str) -> str:
    """``host:port`` of a URL, for error messages."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def translate_error(
    request: Request,
    exc: BaseException,
    timeouts: tuple[type[BaseException], ...],
    *,
    reading: bool = False,
    undecodable: tuple[type[BaseException], ...] = (),
) -> AzureMLChatError:
    """Our error for an HTTP library's transport failure, in one place for every driver:
    ``except ERRORS as exc: raise translate_error(request, exc, TIMEOUTS) from exc``.

    A driver catches only its library's transport failures (anything else propagates as
    it is: a bug to see, not to retry). ``timeouts`` are the time-outs among them and
    ``undecodable`` the errors (raised, or wrapped by one of them) that mean the body does
    not match its ``content-encoding``: a :class:`ResponseFormatError`. The messages name
    the host and port and, for time-outs, the limit and the setting that changes it; they
    never hold headers (so never the key). An ``except`` clause rather than a context
    manager: on the usual path it costs nothing, where ``with`` costs three Python calls.
    """
    if isinstance(exc, timeouts):
        limit = "no time-out" if request.timeout is None else f"timeout={request.timeout:g}s"
        step = "waiting for the reply body" if reading else "connecting or waiting for the reply"
        return APITimeoutError(
            f"timed out {step} from {where(request.url)} ({limit}; raise it with timeout= or AZUREML_TIMEOUT, "
            f"or pass timeout=None for none): {str(exc) or type(exc).__name__}"
        )
    if isinstance(exc, undecodable) or isinstance(exc.__cause__, undecodable):
        return ResponseFormatError(
            f"the reply from {where(request.url)} does not match its content-encoding: {str(exc) or type(exc).__name__}"
        )
    step = "the connection broke while reading the reply from" if reading else "could not connect to"
    return APIConnectionError(f"{step} {where(request.url)}: {str(exc) or type(exc).__name__}")
