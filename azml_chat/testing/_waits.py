"""Retries without their waits, for tests that script faults with realistic ``retry-after``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .._core import skip_retry_waits

__all__ = ["instant_retries"]


@contextlib.contextmanager
def instant_retries() -> Iterator[list[float]]:
    """Within the block, clients decide every retry wait as usual but do not sleep it: each
    wait is appended to the list this yields, and the next attempt starts at once.

    So a test can script ``Fault(503, headers={"retry-after": "30"})`` and check both the
    retry and the wait in milliseconds::

        with instant_retries() as waits:
            assert client.chat("hi").content
        assert waits == [30.0]

    It applies to every client in the process (threads and event loops included) until the
    block ends; blocks nest.
    """
    waits: list[float] = []
    previous = skip_retry_waits(waits)
    try:
        yield waits
    finally:
        skip_retry_waits(previous)
