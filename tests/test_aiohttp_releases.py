"""Defects of particular aiohttp releases that the ``aiohttp`` extra's version range excludes.

pyproject.toml allows ``aiohttp>=3.10,!=3.14.0,!=3.14.1``. 3.9.0 gave a cancelled call's
reply to the next call (``test_aiohttp_driver.py::test_cancellation_releases_the_connection``
fails there); the test below fails on 3.14.0 and 3.14.1, which re-armed the ``sock_read``
time-out on a connection sitting idle in the pool (aiohttp#12953), so the next call on that
connection failed at once with a time-out. ``nox -s tests-lowest`` runs this file on the
lowest allowed release.
"""

from __future__ import annotations

import asyncio

import pytest
from support import API_KEY, aiohttp_connections_in_use

from azml_chat import AsyncChatClient
from azml_chat.testing import LocalEndpoint


@pytest.mark.asyncio
async def test_a_connection_idle_longer_than_the_timeout_serves_the_next_call(endpoint: LocalEndpoint) -> None:
    async with AsyncChatClient(endpoint.url, api_key=API_KEY, driver="aiohttp", timeout=0.3, max_retries=0) as client:
        assert (await client.chat("first")).content == "first"
        await asyncio.sleep(0.6)  # idle in the pool for twice the per-read time-out
        assert (await client.chat("second")).content == "second"
        assert endpoint.total_connections == 1  # the pooled connection was reused, not replaced
        assert aiohttp_connections_in_use(client) == 0
