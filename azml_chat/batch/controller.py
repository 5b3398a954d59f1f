"""The sans-IO concurrency controller of a batch: AIMD with slow start, global pauses and budgets.

:class:`AIMDController` decides *when the next request may be sent*; it never reads a clock,
sleeps or touches a socket. The runner feeds it what happened (a send, a reply, an overload,
another error) with a clock reading, and asks :meth:`~AIMDController.send_delay` before each
send. This keeps every decision testable with a fake clock, as h11 does for HTTP.

The limit follows TCP congestion control and Netflix's concurrency-limits:

- **slow start**: until the first overload the limit grows by one per healthy reply, so it
  doubles every round trip (2, 4, 8, ...);
- **multiplicative decrease**: an overload (429, 503/504, a time-out) halves the limit the
  first time (slow start overshoots by up to 2x) and multiplies it by ``backoff`` (0.9)
  afterwards; requests sent before the last cut do not cut again, so one burst of 429s
  costs one cut, not one per reply;
- **additive increase with a remembered ceiling**: below the limit that last overloaded
  (the ceiling, as CUBIC's W_max) the limit grows by one per round trip; just under it the
  growth slows ``probe_patience`` times, so a steady endpoint sees one probing 429 every
  ``probe_patience`` round trips instead of one per round trip; once the limit passes the
  old ceiling without an overload, the ceiling is forgotten (the endpoint grew).
- **global pause**: a ``retry-after`` pauses every new send (not only the retried row)
  until it has passed, up to ``max_pause`` seconds;
- **budgets**: ``max_requests_per_minute`` paces sends evenly (no burst, so any quota
  window sees at most one request over); ``max_tokens_per_minute`` is a token bucket holding
  one second's worth, charged on send from an estimate and settled with the usage the
  endpoint reports.

A fixed limit (``adaptive=False``) keeps the pauses and budgets and never changes the limit.
"""

from __future__ import annotations

import math

import attrs

from ..errors import ConfigurationError

__all__ = ["AIMDController", "Ticket"]


@attrs.frozen
class Ticket:
    """One send, as the controller recorded it; hand it back with the outcome."""

    sent_at: float  #: clock reading at the send
    tokens: float  #: tokens charged against ``max_tokens_per_minute`` (an estimate)


class _Bucket:
    """A token bucket that may run into debt: a send is allowed while the level is >= ``need``."""

    def __init__(self, per_minute: float, capacity: float | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate) if capacity is None else capacity  # default: one second's worth
        self.level = self.capacity
        self.updated: float | None = None

    def refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now if self.updated is None else max(self.updated, now)

    def wait(self, now: float, need: float) -> float:
        self.refill(now)
        need = min(need, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate


def _positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or math.isinf(value):
        raise ConfigurationError(f"{name} must be a positive number or None, not {value!r}")
    return float(value)


class AIMDController:
    """Decides how many requests may be in flight and when the next may be sent.

    Feed it with :meth:`on_send` (which returns a :class:`Ticket`), then exactly one of
    :meth:`on_success`, :meth:`on_overload` or :meth:`on_error` per ticket. Ask
    :meth:`send_delay` before each send. ``now`` is any monotonic clock in seconds.

    Parameters: ``initial_limit`` (default 2) is where the limit starts; it stays within
    ``min_limit`` .. ``max_limit`` (default 100, the connection pool of both HTTP drivers:
    beyond it calls queue inside the HTTP library, which only adds latency and CPU).
    ``adaptive=False`` fixes it at ``initial_limit``.
    ``backoff`` is the multiplicative cut after slow start, ``probe_patience`` how many
    round trips the limit spends just under the last overloading limit before it probes
    again. ``max_requests_per_minute`` / ``max_tokens_per_minute`` are optional budgets;
    ``default_completion_tokens`` is the completion size assumed for the token budget until
    replies report their usage (when a request gives no ``max_tokens``). ``max_pause``
    caps a server's ``retry-after`` pause.
    """

    def __init__(
        self,
        *,
        initial_limit: int = 2,
        min_limit: int = 1,
        max_limit: int = 100,
        adaptive: bool = True,
        backoff: float = 0.9,
        probe_patience: float = 10.0,
        max_requests_per_minute: float | None = None,
        max_tokens_per_minute: float | None = None,
        default_completion_tokens: int = 256,
        max_pause: float = 120.0,
    ) -> None:
        for name, value in (("initial_limit", initial_limit), ("min_limit", min_limit), ("max_limit", max_limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a whole number >= 1, not {value!r}")
        if not min_limit <= max_limit:
            raise ConfigurationError(f"min_limit ({min_limit}) must not exceed max_limit ({max_limit})")
        if not 0 < backoff < 1:
            raise ConfigurationError(f"backoff must be between 0 and 1 (exclusive), not {backoff!r}")
        if not probe_patience >= 1:
            raise ConfigurationError(f"probe_patience must be >= 1, not {probe_patience!r}")
        if not max_pause >= 0:
            raise ConfigurationError(f"max_pause must be >= 0 seconds, not {max_pause!r}")
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.adaptive = adaptive
        self.backoff = backoff
        self.probe_patience = probe_patience
        self.max_pause = max_pause
        self.max_requests_per_minute: float | None = _positive("max_requests_per_minute", max_requests_per_minute)
        self.max_tokens_per_minute: float | None = _positive("max_tokens_per_minute", max_tokens_per_minute)
        # Requests are paced evenly (a bucket of one): at most rate x W + 1 sends in any window W, so
        # a sliding-window quota (Azure counts over 1, 10 or 60 s) sees at most one request too many.
        self._requests = _Bucket(self.max_requests_per_minute, 1.0) if self.max_requests_per_minute else None
        self._tokens = _Bucket(self.max_tokens_per_minute) if self.max_tokens_per_minute else None
        self._limit = float(min(max(initial_limit, min_limit), max_limit))
        self._ceiling: float | None = None
        self._slow_start = adaptive
        self._last_cut = -math.inf
        self._paused_until = -math.inf
        self._full_at = -math.inf
        self._completion_tokens = float(default_completion_tokens)
        self.in_flight: int = 0  #: sends not yet answered
        self.overloads: int = 0  #: overload signals received (429, 503/504, time-outs)
        self.cuts: int = 0  #: times the limit was cut

    def __repr__(self) -> str:
        mode = "adaptive" if self.adaptive else "fixed"
        return f"<AIMDController {mode} limit={self.limit} in_flight={self.in_flight}>"

    @property
    def limit(self) -> int:
        """The current in-flight limit (a whole number)."""
        return int(self._limit)

    @property
    def ceiling(self) -> int | None:
        """The limit at which the endpoint last overloaded, while it is remembered."""
        return None if self._ceiling is None else int(self._ceiling)

    def paused_for(self, now: float) -> float:
        """Seconds left of a server-requested pause (0 when not paused)."""
        return max(0.0, self._paused_until - now)

    def send_delay(self, now: float) -> float | None:
        """When the next request may go: ``0.0`` now, ``None`` after a reply frees a slot,
        or a number of seconds to wait (a ``retry-after`` pause or a budget) before asking again."""
        if self.in_flight >= self.limit:
            return None
        delay = self.paused_for(now)
        if self._requests is not None:
            delay = max(delay, self._requests.wait(now, 1.0))
        if self._tokens is not None:
            delay = max(delay, self._tokens.wait(now, 0.0))  # out of debt: the next estimate may overdraw
        return delay

    def estimate_tokens(self, prompt_tokens: int, max_completion_tokens: int | None = None) -> float:
        """Tokens a request is expected to use: its prompt plus ``max_tokens`` (when given) or the
        average completion seen so far."""
        completion = self._completion_tokens if max_completion_tokens is None else max_completion_tokens
        return float(prompt_tokens) + completion

    def on_send(self, now: float, *, prompt_tokens: int = 0, max_completion_tokens: int | None = None) -> Ticket:
        """Record a send; returns the ticket to hand back with its outcome."""
        self.in_flight += 1
        tokens = 0.0
        if self._requests is not None:
            self._requests.refill(now)
            self._requests.level -= 1
        if self._tokens is not None:
            tokens = self.estimate_tokens(prompt_tokens, max_completion_tokens)
            self._tokens.refill(now)
            self._tokens.level -= tokens
        if self.in_flight >= self.limit:
            self._full_at = now
        return Ticket(now, tokens)

    def on_success(
        self, ticket: Ticket, now: float, *, prompt_tokens: int | None = None, completion_tokens: int | None = None
    ) -> None:
        """A healthy reply: settle the token estimate with the reported usage and grow the limit."""
        # Only a limit that was reached since this send is evidence that more would fit (as TCP's
        # cwnd validation): replies to a mostly idle limit must not grow it without bound.
        busy = self._full_at >= ticket.sent_at or self.in_flight >= self._limit / 2
        self._release()
        if completion_tokens is not None:
            self._completion_tokens += (completion_tokens - self._completion_tokens) * 0.1
        if self._tokens is not None and prompt_tokens is not None and completion_tokens is not None:
            self._tokens.level += ticket.tokens - (prompt_tokens + completion_tokens)
        if self.adaptive and busy:
            self._grow()

    def on_overload(self, ticket: Ticket, now: float, *, retry_after: float | None = None) -> None:
        """The endpoint is overloaded (429, 503, a time-out): cut the limit once per round trip,
        and pause every send for ``retry_after`` seconds when the server asked for it."""
        self._release()
        self.overloads += 1
        self._refund(ticket)
        if retry_after is not None and retry_after > 0:
            self._paused_until = max(self._paused_until, now + min(retry_after, self.max_pause))
        if self.adaptive and ticket.sent_at >= self._last_cut:
            self._ceiling = self._limit
            factor = 0.5 if self._slow_start else self.backoff
            self._slow_start = False
            self._limit = float(max(self.min_limit, math.floor(self._limit * factor)))
            self._last_cut = now
            self.cuts += 1

    def on_error(self, ticket: Ticket, now: float) -> None:
        """Any other failure (a bad request, a broken connection): frees the slot, changes nothing else."""
        self._release()
        self._refund(ticket)

    def _release(self) -> None:
        if self.in_flight <= 0:
            raise RuntimeError("AIMDController got an outcome for a send it did not record")
        self.in_flight -= 1

    def _refund(self, ticket: Ticket) -> None:
        if self._tokens is not None:  # a rejected request used no tokens
            self._tokens.level = min(self._tokens.capacity, self._tokens.level + ticket.tokens)

    def _grow(self) -> None:
        limit = self._limit
        if self._slow_start:
            step = 1.0
        elif self._ceiling is not None and limit + 1 >= self._ceiling:
            step = 1.0 / (limit * self.probe_patience)  # probe the known overloading level slowly
        else:
            step = 1.0 / limit  # one per round trip
        self._limit = min(float(self.max_limit), limit + step)
        if self._ceiling is not None and self._limit >= self._ceiling + 1:
            self._ceiling = None  # passed the old ceiling unharmed: capacity grew
