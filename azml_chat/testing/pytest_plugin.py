"""pytest plugin of azml-chat: fixtures serving a ``LocalEndpoint`` from a background thread.

Registered through the ``pytest11`` entry point; the endpoint code loads only when a fixture
is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from azml_chat import testing

__all__ = ["azml_endpoint", "azml_endpoint_factory"]


@pytest.fixture
def azml_endpoint() -> Iterator[testing.LocalEndpoint]:
    """A running ``LocalEndpoint`` (serverless and dedicated routes, api key ``test-key``)."""
    with testing.LocalEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def azml_endpoint_factory() -> Iterator[Callable[..., testing.LocalEndpoint]]:
    """A callable taking ``LocalEndpoint`` keyword arguments and returning a started endpoint.

    Every endpoint it started is stopped at teardown.
    """
    started: list[testing.LocalEndpoint] = []

    def factory(**kwargs: Any) -> testing.LocalEndpoint:
        endpoint = testing.LocalEndpoint(**kwargs).start()
        started.append(endpoint)
        return endpoint

    yield factory
    for endpoint in reversed(started):
        endpoint.stop()
