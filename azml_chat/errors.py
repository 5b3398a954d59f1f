"""Exceptions raised by azml_chat.

Every exception derives from :class:`AzureMLChatError`::

    AzureMLChatError
    ├── ConfigurationError        bad client settings (URL, api type, formatter, ...)
    ├── InvalidRequestError       bad call input, caught before any HTTP traffic
    ├── ClientClosedError         the client was closed, or its http_client belongs to another event loop
    ├── APIConnectionError        no usable reply: connection refused/reset, DNS, ...
    │   └── APITimeoutError       connect/read time-out or overall deadline exceeded
    ├── APIStatusError            the endpoint answered with an error
    │   ├── BadRequestError       400, 422
    │   ├── AuthenticationError   401
    │   ├── PermissionDeniedError 403
    │   ├── NotFoundError         404 (wrong URL or deployment)
    │   ├── RateLimitError        429
    │   ├── ModelError            424 (the model container failed) or an error body sent with 200
    │   └── ServerError           408, 5xx
    ├── ResponseFormatError       a reply that cannot be parsed
    │   └── StructuredOutputError the reply does not fit the requested structure
    └── StreamError               the stream failed after it started

Status errors carry ``status_code``, the server's ``message``, ``request_id``,
``headers`` and ``body``. No exception ever contains the API key or a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "AzureMLChatError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "InvalidRequestError",
    "ModelError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseFormatError",
    "ServerError",
    "StreamError",
    "StructuredOutputError",
]


class AzureMLChatError(Exception):
    """Base class of every error raised by azml_chat.

    ``str(error)`` is rendered when asked for (by :meth:`__str__`, the one place that
    formats error text), so details attached after construction, such as a request id
    learned later, still show.
    """

    message: str
    request_id: str | None = None

    def __init__(self, message: str = "", *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id

    def _details(self) -> str:
        """What a subclass adds after the message (before the request id)."""
        return ""

    def _prefix(self) -> str:
        """What a subclass puts before the message."""
        return ""

    def __str__(self) -> str:
        text = f"{self._prefix()}{self.message}{self._details()}"
        if self.request_id:
            text += f" (request id: {self.request_id})"
        return text


class ConfigurationError(AzureMLChatError, ValueError):
    """The client was configured wrongly; the message says what to change."""


class InvalidRequestError(AzureMLChatError, ValueError):
    """The messages or parameters of a call are invalid; nothing was sent."""


class ClientClosedError(AzureMLChatError, RuntimeError):
    """The client was used after ``close()``/``aclose()``, or a caller's async http_client was
    used on an event loop other than its own; nothing was sent."""


class APIConnectionError(AzureMLChatError):
    """The endpoint could not be reached or the connection broke before a full reply."""


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read or the overall ``timeout`` deadline)."""


class APIStatusError(AzureMLChatError):
    """The endpoint answered with an error status (or an error body).

    ``retry_after`` is the wait in seconds the server asked for (``retry-after-ms``,
    ``x-ms-retry-after-ms`` or ``retry-after``), or ``None`` when it gave none.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status_code = status_code
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})
        self.code = code
        self.retry_after = retry_after

    def _prefix(self) -> str:
        return f"HTTP {self.status_code}{f' {self.code}' if self.code else ''}: "


class BadRequestError(APIStatusError):
    """400 or 422: the endpoint rejected the request body or a parameter."""


class AuthenticationError(APIStatusError):
    """401: the key or token is missing, wrong or expired."""


class PermissionDeniedError(APIStatusError):
    """403: the identity is not allowed to call this endpoint."""


class NotFoundError(APIStatusError):
    """404: wrong URL, route or deployment name."""


class RateLimitError(APIStatusError):
    """429: too many requests (rate limit or concurrent request limit)."""


class ServerError(APIStatusError):
    """408 or 5xx: the service failed or was not ready."""


class ModelError(APIStatusError):
    """The model container failed.

    For HTTP 424 Azure reports the container's own status in ``model_status`` and
    the reason in ``model_reason``. Error bodies sent with HTTP 200 (``{}``,
    ``{"error": ...}``) are raised as ``ModelError`` with ``status_code == 200``.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        model_status: int | None = None,
        model_reason: str | None = None,
        request_id: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            request_id=request_id,
            body=body,
            headers=headers,
            code=code,
            retry_after=retry_after,
        )
        self.model_status = model_status
        self.model_reason = model_reason


class ResponseFormatError(AzureMLChatError):
    """The reply could not be understood; ``excerpt`` shows its start."""

    def __init__(self, message: str, *, excerpt: str = "", request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.excerpt = excerpt

    def _details(self) -> str:
        return f"; reply starts with: {self.excerpt!r}" if self.excerpt else ""


class StructuredOutputError(ResponseFormatError):
    """The reply is not valid JSON for, or does not fit, the requested type; ``text`` is the whole reply."""

    def __init__(self, message: str, *, text: str = "", request_id: str | None = None) -> None:
        super().__init__(message, excerpt=text[:300], request_id=request_id)
        self.text = text


class StreamError(AzureMLChatError):
    """The stream reported an error or ended before ``[DONE]``."""

    def __init__(self, message: str, *, request_id: str | None = None, body: Any = None) -> None:
        super().__init__(message, request_id=request_id)
        self.body = body
