"""pytest plugin of azml-chat: a local imitation of an Azure endpoint, and clients bound to it.

Registered through the ``pytest11`` entry point, so installing azml-chat makes these
fixtures available in every test suite. Loading the plugin imports nothing but pytest and
the standard library: the endpoint (h11, anyio) and the client load when a fixture is
first used, so test runs that never use them pay nothing (see
``benchmarks/plugin_startup.py``).

Fixtures:

- ``azml_endpoint``: a fresh ``LocalEndpoint`` per test (serverless kind, key
  ``test-key``), served from a background thread; script it with ``add_fault()``, a
  ``responder``, capacity settings, and read ``requests`` afterwards.
- ``azml_endpoint_factory``: ``factory(**LocalEndpoint options)`` starts more endpoints
  (another ``kind``, ``family``, ``capacity``, ...); all stop at teardown.
- ``azml_session_endpoint``: one endpoint for the whole session, cheaper for tests that
  only read; a test that queues faults or changes its settings must undo that.
- ``azml_client``: a ``ChatClient`` bound to ``azml_endpoint`` with quick retries.
- ``azml_async_client``: the same as an ``AsyncChatClient``, opened and closed in the
  test's own event loop: request it from ``async`` tests run by pytest-asyncio (any mode)
  or by anyio's plugin (``@pytest.mark.anyio``, asyncio or trio).

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from azml_chat import AsyncChatClient, ChatClient, RetryPolicy
    from azml_chat.testing import LocalEndpoint

__all__ = [
    "azml_client",
    "azml_endpoint",
    "azml_endpoint_factory",
    "azml_session_endpoint",
    "pytest_configure",
]


@pytest.fixture
def azml_endpoint() -> Iterator[LocalEndpoint]:
    """A running ``LocalEndpoint`` for one test (serverless and Azure ML routes, key ``test-key``)."""
    from azml_chat.testing import LocalEndpoint

    with LocalEndpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def azml_session_endpoint() -> Iterator[LocalEndpoint]:
    """One ``LocalEndpoint`` shared by the whole session (serverless, key ``test-key``).

    Starting an endpoint costs a thread and a socket; tests that only send requests can
    share this one. Faults queued or settings changed here leak into later tests: use
    ``azml_endpoint`` for those, or undo them (``clear()`` forgets faults and requests).
    """
    from azml_chat.testing import LocalEndpoint

    with LocalEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def azml_endpoint_factory() -> Iterator[Callable[..., LocalEndpoint]]:
    """A callable taking ``LocalEndpoint`` keyword arguments and returning a started endpoint.

    Every endpoint it started is stopped at teardown.
    """
    from azml_chat.testing import LocalEndpoint

    started: list[LocalEndpoint] = []

    def factory(**options: Any) -> LocalEndpoint:
        endpoint = LocalEndpoint(**options).start()
        started.append(endpoint)
        return endpoint

    yield factory
    for endpoint in reversed(started):
        endpoint.stop()


def _quick_retries() -> RetryPolicy:
    """Backoff in milliseconds, so scripted 429s and 503s do not slow a test down."""
    from azml_chat import RetryPolicy

    return RetryPolicy(initial_backoff=0.01, max_backoff=0.1, max_retry_after=1.0)


@pytest.fixture
def azml_client(azml_endpoint: LocalEndpoint) -> Iterator[ChatClient]:
    """A ``ChatClient`` bound to ``azml_endpoint``: its URL and key, quick retries, 10 s time-out."""
    from azml_chat import ChatClient

    key = azml_endpoint.api_key
    with ChatClient(azml_endpoint.url, api_key=key, retry_policy=_quick_retries(), timeout=10) as client:
        yield client


async def _async_client(holder: object, azml_endpoint: LocalEndpoint) -> AsyncIterator[AsyncChatClient]:
    """An ``AsyncChatClient`` bound to ``azml_endpoint``, like ``azml_client``, in the test's loop.

    (``holder`` is the plugin object ``pytest_configure`` registers this fixture on.)
    """
    from azml_chat import AsyncChatClient

    key = azml_endpoint.api_key
    async with AsyncChatClient(azml_endpoint.url, api_key=key, retry_policy=_quick_retries(), timeout=10) as client:
        yield client


def pytest_configure(config: pytest.Config) -> None:
    """Register ``azml_async_client`` with the async runner in use.

    pytest-asyncio (in strict mode) runs only fixtures made with its own decorator, while
    anyio's plugin runs plain async fixtures; pytest-asyncio's decorator serves both, so it
    is used whenever that plugin is active (it is already imported then: no extra cost).
    """
    decorate: Any = pytest.fixture
    plugins = config.pluginmanager.get_plugins()
    if any(getattr(plugin, "__name__", None) == "pytest_asyncio.plugin" for plugin in plugins):
        import pytest_asyncio

        decorate = pytest_asyncio.fixture

    class AsyncClientFixture:
        """Holds the async client fixture (pytest collects fixtures from plugin objects)."""

        azml_async_client = decorate(name="azml_async_client")(_async_client)

    if not config.pluginmanager.has_plugin("azml_chat-async-client"):
        config.pluginmanager.register(AsyncClientFixture(), "azml_chat-async-client")
