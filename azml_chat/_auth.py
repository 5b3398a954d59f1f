"""Entra ID (AAD) tokens: call the credential again before expiry, once for all waiters."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Any, Protocol

import anyio
import anyio.to_thread

from .errors import ConfigurationError

__all__ = ["TokenCredential", "TokenProvider"]

logger: logging.Logger = logging.getLogger("azml_chat")


class TokenCredential(Protocol):
    """Anything with azure-identity's ``get_token(*scopes)`` (sync or async) returning an
    object with ``token`` and ``expires_on`` (seconds since the epoch)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class TokenProvider:
    """Caches a bearer token and asks the credential for a new one before it expires.

    A token is refreshed ``refresh_margin`` seconds before ``expires_on`` (at most half
    way through its life, so short-lived tokens are still cached), or at ``refresh_on``
    when the credential gives one. Concurrent callers (tasks or threads) wait for one
    refresh instead of each asking the credential. If a refresh fails while the cached
    token has not expired yet, the cached token is used and the next call tries again.
    Errors of the credential itself (e.g. azure-identity's ``ClientAuthenticationError``)
    propagate unchanged.
    """

    def __init__(self, credential: Any, scope: str, refresh_margin: float = 300.0) -> None:
        if not callable(getattr(credential, "get_token", None)):
            raise ConfigurationError("credential must have a get_token(*scopes) method, like azure-identity's")
        self._credential = credential
        self._scope = scope
        self._margin = refresh_margin
        self._state: tuple[str, float, float] | None = None  # token, expires_on, refresh_at
        self._thread_lock = threading.Lock()
        self._async_lock: anyio.Lock | None = None
        self._is_async = inspect.iscoroutinefunction(credential.get_token)
        #: How many tokens the credential has handed out so far.
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"TokenProvider(scope={self._scope!r}, credential={type(self._credential).__name__})"

    @property
    def is_async(self) -> bool:
        """Whether the credential's ``get_token`` is a coroutine function (azure.identity.aio)."""
        return self._is_async

    def invalidate(self, seen: int) -> None:
        """The service rejected the token this provider had handed out when :attr:`refreshes` was
        ``seen`` (HTTP 401, e.g. revoked early): forget it, unless a newer token came since."""
        if self.refreshes == seen:
            self._state = None

    def _current(self, *, fresh: bool) -> str | None:
        """The cached token if it is not due for refresh (``fresh``) or merely not expired."""
        state = self._state
        if state is None:
            return None
        token, expires_on, refresh_at = state
        return token if time.time() < (refresh_at if fresh else expires_on) else None

    def _store(self, result: Any) -> str:
        token = getattr(result, "token", None)
        if not isinstance(token, str) or not token:
            raise ConfigurationError("credential.get_token() returned no token")
        if not token.isascii() or not token.isprintable():  # never quoted: it is a secret
            raise ConfigurationError("credential.get_token() returned a token HTTP headers cannot carry")
        try:
            expires_on = float(getattr(result, "expires_on", 0) or 0)
            refresh_on = float(getattr(result, "refresh_on", 0) or 0)
        except (TypeError, ValueError):
            raise ConfigurationError("credential.get_token() returned a token without a numeric expires_on") from None
        now = time.time()
        refresh_at = expires_on - min(self._margin, max(expires_on - now, 0.0) / 2)
        if refresh_on:
            refresh_at = min(refresh_at, refresh_on)
        self._state = (token, expires_on, refresh_at)
        self.refreshes += 1
        return token

    def _fallback(self, error: BaseException) -> str:
        """After a failed refresh: the cached token while it is still valid, else the error."""
        token = self._current(fresh=False)
        if token is None:
            raise error
        logger.warning("token refresh failed (%s); using the cached token until it expires", type(error).__name__)
        return token

    def get(self) -> str:
        """The current token (sync callers)."""
        token = self._current(fresh=True)
        if token is not None:
            return token
        if self._is_async:
            raise ConfigurationError("an async credential needs AsyncChatClient; use a sync credential here")
        seen = self.refreshes
        with self._thread_lock:
            if self.refreshes != seen and self._state is not None:
                return self._state[0]  # another thread refreshed while this one waited
            try:
                result = self._credential.get_token(self._scope)
                if inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()
                    raise ConfigurationError("an async credential needs AsyncChatClient; use a sync credential here")
                return self._store(result)
            except ConfigurationError:
                raise
            except Exception as exc:
                return self._fallback(exc)

    async def aget(self) -> str:
        """The current token (async callers); a sync credential runs in a worker thread."""
        token = self._current(fresh=True)
        if token is not None:
            return token
        if self._async_lock is None:
            self._async_lock = anyio.Lock()
        seen = self.refreshes
        async with self._async_lock:
            if self.refreshes != seen and self._state is not None:
                return self._state[0]  # another task refreshed while this one waited
            try:
                if self._is_async:
                    result = await self._credential.get_token(self._scope)
                else:
                    result = await anyio.to_thread.run_sync(self._credential.get_token, self._scope)
                    if inspect.isawaitable(result):
                        result = await result
                return self._store(result)
            except ConfigurationError:
                raise
            except Exception as exc:
                return self._fallback(exc)
