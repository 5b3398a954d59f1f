"""Exceptions raised by azml_chat.

Every exception derives from :class:`AzureMLChatError`::

    AzureMLChatError
    ├── ConfigurationError        bad client settings (URL, api type, formatter, ...)
    ├── InvalidRequestError       bad call input, caught before any HTTP traffic
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
    """Base class of every error raised by azml_chat."""


class ConfigurationError(AzureMLChatError, ValueError):
    """The client was configured wrongly; the message says what to change."""


class InvalidRequestError(AzureMLChatError, ValueError):
    """The messages or parameters of a call are invalid; nothing was sent."""


class APIConnectionError(AzureMLChatError):
    """The endpoint could not be reached or the connection broke before a full reply."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read or the overall ``timeout`` deadline)."""


class APIStatusError(AzureMLChatError):
    """The endpoint answered with an error status (or an error body)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self.headers = dict(headers or {})
        self.code = code
        text = f"HTTP {status_code}"
        if code:
            text += f" {code}"
        text += f": {message}"
        if request_id:
            text += f" (request id: {request_id})"
        super().__init__(text)


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
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            request_id=request_id,
            body=body,
            headers=headers,
            code=code,
        )
        self.model_status = model_status
        self.model_reason = model_reason


class ResponseFormatError(AzureMLChatError):
    """The reply could not be understood; ``excerpt`` shows its start."""

    def __init__(self, message: str, *, excerpt: str = "", request_id: str | None = None) -> None:
        self.message = message
        self.excerpt = excerpt
        self.request_id = request_id
        text = message
        if excerpt:
            text += f"; reply starts with: {excerpt!r}"
        if request_id:
            text += f" (request id: {request_id})"
        super().__init__(text)


class StructuredOutputError(ResponseFormatError):
    """The reply is not valid JSON for, or does not fit, the requested type; ``text`` is the whole reply."""

    def __init__(self, message: str, *, text: str = "", request_id: str | None = None) -> None:
        super().__init__(message, excerpt=text[:300], request_id=request_id)
        self.text = text


class StreamError(AzureMLChatError):
    """The stream reported an error or ended before ``[DONE]``."""

    def __init__(self, message: str, *, request_id: str | None = None, body: Any = None) -> None:
        super().__init__(message + (f" (request id: {request_id})" if request_id else ""))
        self.message = message
        self.request_id = request_id
        self.body = body
