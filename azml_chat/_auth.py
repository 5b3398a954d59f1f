"""Entra ID (AAD) tokens: call the credential again before expiry, once for all waiters."""

from __future__ import annotations

import inspect
import threading
import time
from typing import Any, Protocol

import anyio
import anyio.to_thread

from .errors import ConfigurationError

__all__ = ["SCOPES", "TokenCredential", "TokenProvider"]

#: Default token scope per endpoint kind.
SCOPES = {
    "dedicated": "https://ml.azure.com/.default",
    "serverless": "https://cognitiveservices.azure.com/.default",
}


class TokenCredential(Protocol):
    """Anything with azure-identity's ``get_token(*scopes)`` (sync or async) returning an
    object with ``token`` and ``expires_on`` (seconds since the epoch)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class TokenProvider:
    """Caches a bearer token and refreshes it ``refresh_margin`` seconds before it expires.

    Concurrent callers wait for one refresh instead of each asking the credential.
    """

    def __init__(self, credential: Any, scope: str, refresh_margin: float = 300.0) -> None:
        if not callable(getattr(credential, "get_token", None)):
            raise ConfigurationError("credential must have a get_token(*scopes) method, like azure-identity's")
        self._credential = credential
        self._scope = scope
        self._margin = refresh_margin
        self._token: str | None = None
        self._expires_on = 0.0
        self._thread_lock = threading.Lock()
        self._async_lock: anyio.Lock | None = None
        self._is_async = inspect.iscoroutinefunction(credential.get_token)
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"TokenProvider(scope={self._scope!r}, credential={type(self._credential).__name__})"

    def _cached(self) -> str | None:
        if self._token is not None and self._expires_on - time.time() > self._margin:
            return self._token
        return None

    def _store(self, result: Any) -> str:
        token = getattr(result, "token", None)
        if not isinstance(token, str) or not token:
            raise ConfigurationError("credential.get_token() returned no token")
        self._token = token
        self._expires_on = float(getattr(result, "expires_on", 0) or 0)
        self.refreshes += 1
        return token

    def get(self) -> str:
        """The current token (sync callers)."""
        token = self._cached()
        if token is not None:
            return token
        if self._is_async:
            raise ConfigurationError("an async credential needs AsyncChatClient; use a sync credential here")
        with self._thread_lock:
            return self._cached() or self._store(self._credential.get_token(self._scope))

    async def aget(self) -> str:
        """The current token (async callers); a sync credential runs in a worker thread."""
        token = self._cached()
        if token is not None:
            return token
        if self._async_lock is None:
            self._async_lock = anyio.Lock()
        async with self._async_lock:
            token = self._cached()
            if token is not None:
                return token
            if self._is_async:
                result = await self._credential.get_token(self._scope)
            else:
                result = await anyio.to_thread.run_sync(self._credential.get_token, self._scope)
            return self._store(result)
