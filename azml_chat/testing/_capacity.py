"""The capacity model of the local endpoint: how many model requests it takes, and when.

A managed online endpoint serves at most ``max_concurrent_requests_per_instance`` x
instances requests at once and answers 429 beyond; serverless and Azure OpenAI
deployments have a requests-per-minute quota. ``Capacity`` imitates both, exactly and
deterministically: it is fed clock readings (no I/O, no clock of its own), so the same
arrivals always get the same answers.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
from typing import Literal

__all__ = ["Capacity", "CapacityStats", "Rejection"]


@dataclasses.dataclass(frozen=True)
class CapacityStats:
    """Counters of a ``Capacity`` since the endpoint was created (a snapshot)."""

    admitted: int  #: model requests let in
    rejected_in_flight: int  #: 429s because ``capacity`` requests were already in flight
    rejected_rate: int  #: 429s because the requests-per-minute budget was spent
    in_flight: int  #: admitted requests whose reply is not fully sent yet
    peak_in_flight: int  #: the most ever in flight at once

    @property
    def rejected(self) -> int:
        """All 429s the capacity model sent."""
        return self.rejected_in_flight + self.rejected_rate


@dataclasses.dataclass(frozen=True)
class Rejection:
    """Why a request was refused, and the wait to announce (None: no ``retry-after``)."""

    reason: Literal["in_flight", "rate"]
    retry_after: float | None
    message: str


class Capacity:
    """Admission control: an in-flight limit and/or a sliding-window request budget.

    - ``max_in_flight``: at most this many admitted requests at once (None: no limit);
      a slot is taken at admission and given back by ``release()``.
    - ``requests_per_minute``: at most this many admissions in any ``rate_window``
      seconds, scaled (``requests_per_minute * rate_window / 60``, at least 1); None: no
      budget. Refused requests do not spend the budget.
    - ``rate_window``: the sliding window in seconds (60: a per-minute quota; 10 or 1:
      the shorter windows Azure OpenAI enforces quotas over).
    - ``retry_after``: seconds announced on 429s of the in-flight limit (None: none, as
      managed online endpoints send none). Budget 429s always announce the exact wait
      until the window admits again.
    - ``service_time``: seconds each admitted request takes before its reply (read by
      the endpoint, which sleeps it while holding the slot).

    Every setting may be changed at any time; the counts carry over. Thread-safe.
    """

    def __init__(
        self,
        *,
        max_in_flight: int | None = None,
        requests_per_minute: float | None = None,
        rate_window: float = 60.0,
        retry_after: float | None = None,
        service_time: float = 0.0,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"capacity must be at least 1 request in flight, not {max_in_flight!r}")
        if requests_per_minute is not None and not requests_per_minute > 0:
            raise ValueError(f"requests_per_minute must be > 0, not {requests_per_minute!r}")
        if not (rate_window > 0 and math.isfinite(rate_window)):
            raise ValueError(f"rate_window must be a positive number of seconds, not {rate_window!r}")
        if retry_after is not None and not (retry_after >= 0 and math.isfinite(retry_after)):
            raise ValueError(f"retry_after must be >= 0 seconds or None, not {retry_after!r}")
        if not (service_time >= 0 and math.isfinite(service_time)):
            raise ValueError(f"service_time must be >= 0 seconds, not {service_time!r}")
        self.max_in_flight = max_in_flight
        self.requests_per_minute = requests_per_minute
        self.rate_window = rate_window
        self.retry_after = retry_after
        self.service_time = service_time
        self._lock = threading.Lock()
        self._admitted_at: collections.deque[float] = collections.deque()  # within the window
        self._in_flight = self._peak = self._admitted = 0
        self._rejected_in_flight = self._rejected_rate = 0

    @property
    def limited(self) -> bool:
        """Whether any limit is set (else ``admit`` always lets requests in)."""
        return self.max_in_flight is not None or self.requests_per_minute is not None

    @property
    def window_budget(self) -> int | None:
        """Admissions allowed per ``rate_window`` (None: no budget)."""
        if self.requests_per_minute is None:
            return None
        return max(1, math.floor(self.requests_per_minute * self.rate_window / 60 + 1e-9))

    def admit(self, now: float) -> Rejection | None:
        """Take a slot for a request arriving at ``now`` (seconds), or say why not."""
        with self._lock:
            if self.max_in_flight is not None and self._in_flight >= self.max_in_flight:
                self._rejected_in_flight += 1
                message = (
                    f"Too many requests: the deployment serves at most {self.max_in_flight} "
                    "requests at once (max_concurrent_requests_per_instance); retry later."
                )
                return Rejection("in_flight", self.retry_after, message)
            budget = self.window_budget
            if budget is not None:
                window = self._admitted_at
                while window and window[0] <= now - self.rate_window:
                    window.popleft()
                if len(window) >= budget:
                    self._rejected_rate += 1
                    wait = max(0.0, window[len(window) - budget] + self.rate_window - now)
                    message = (
                        f"Rate limit exceeded: at most {budget} requests per {self.rate_window:g} s. "
                        f"Please retry after {math.ceil(wait)} seconds."
                    )
                    return Rejection("rate", wait, message)
                window.append(now)
            self._admitted += 1
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
        return None

    def release(self) -> None:
        """Give back the slot of an admitted request (its reply is sent, or it was abandoned)."""
        with self._lock:
            self._in_flight -= 1

    def remaining(self) -> int | None:
        """Admissions left in the window as of the last ``admit`` (None: no budget)."""
        budget = self.window_budget
        if budget is None:
            return None
        with self._lock:
            return max(0, budget - len(self._admitted_at))

    def stats(self) -> CapacityStats:
        """The counters now."""
        with self._lock:
            return CapacityStats(
                admitted=self._admitted,
                rejected_in_flight=self._rejected_in_flight,
                rejected_rate=self._rejected_rate,
                in_flight=self._in_flight,
                peak_in_flight=self._peak,
            )
