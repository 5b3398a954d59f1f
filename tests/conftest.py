"""Shared fixtures: running local endpoints (real HTTP on 127.0.0.1) and clients bound to them.

Async tests use ``@pytest.mark.asyncio`` (pytest-asyncio, strict mode); tests that must
also run on trio use ``@pytest.mark.anyio`` with the ``anyio_backend`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import API_KEY, ClientRunner

from azml_chat.testing import LocalEndpoint

# Our own plugin loads here rather than through its pytest11 entry point (disabled in
# pyproject's addopts), so that coverage is already measuring when azml_chat is imported.
pytest_plugins = ["azml_chat.testing.pytest_plugin", "pytester"]


@pytest.fixture(autouse=True)
def _no_azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's real Azure settings."""
    for name in (
        "AZUREML_ENDPOINT_URL",
        "AZUREML_ENDPOINT_API_KEY",
        "AZUREML_DEPLOYMENT_NAME",
        "AZUREML_ENDPOINT_API_TYPE",
        "AZUREML_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def shared_endpoint() -> Iterator[LocalEndpoint]:
    """One endpoint for read-only tests (no faults, no request assertions)."""
    with LocalEndpoint(api_key=API_KEY) as endpoint:
        yield endpoint


@pytest.fixture
def endpoint() -> Iterator[LocalEndpoint]:
    """A fresh serverless endpoint (dedicated routes served too) for tests that script faults."""
    with LocalEndpoint(kind="serverless", api_key=API_KEY) as endpoint:
        yield endpoint


@pytest.fixture
def dedicated() -> Iterator[LocalEndpoint]:
    """A fresh dedicated endpoint (llama family, ``{"output": ...}`` replies)."""
    with LocalEndpoint(kind="dedicated", family="llama", api_key=API_KEY) as endpoint:
        yield endpoint


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["asyncio", "sync", "aiohttp"])
def runner(request: pytest.FixtureRequest) -> ClientRunner:
    """The same scenario through AsyncChatClient (httpx and aiohttp drivers) and ChatClient."""
    return ClientRunner(request.param)


@pytest.fixture(params=["httpx", "aiohttp"])
def async_driver(request: pytest.FixtureRequest) -> str:
    """The ``driver=`` of AsyncChatClient: async tests taking this fixture run on both drivers."""
    driver: str = request.param
    return driver
