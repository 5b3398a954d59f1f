"""Run many chat requests against one endpoint, adaptively, yielding results as they complete.

    async with run_batch(client, rows) as run:
        async for result in run:
            print(result.id, result.response.content if result.ok else result.error)
    print(run.summary)

One dispatcher task asks the :class:`~azml_chat.batch.controller.AIMDController` when the
next request may go, pulls the next row from the input only then (so a huge input is
streamed, never loaded), and starts one task per row; a row task makes the call, reports
the outcome to the controller, retries retryable failures after a backoff (waiting its turn
again), and hands its :class:`BatchResult` to the consumer through a bounded stream. The
rows open at once are bounded by the limit, so memory stays flat whatever the input size.
Failed rows are results carrying their typed error: nothing is raised, nothing is dropped.

Retries belong to the batch (its controller must see every 429): each call is made with
``max_retries=0``; create the client with ``max_retries=0`` too.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeAlias

import anyio
import attrs

from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AzureMLChatError,
    ConfigurationError,
    InvalidRequestError,
    ModelError,
    RateLimitError,
    ServerError,
)
from .controller import AIMDController, Ticket

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.from_thread import BlockingPortal
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ..client import AsyncChatClient
    from ..messages import ChatResponse

__all__ = [
    "BatchRequest",
    "BatchResult",
    "BatchRun",
    "BatchStatus",
    "BatchSummary",
    "RequestInput",
    "SyncBatchRun",
    "run_batch",
    "run_batch_sync",
]


@attrs.frozen
class BatchRequest:
    """One row of a batch: the messages, the call's parameters and the row's id.

    ``params`` are passed to ``client.chat(messages, **params)`` (``temperature``,
    ``max_tokens``, ...). ``id`` defaults to the row's position in the input (``"0"``, ``"1"``...).
    """

    messages: Any  #: anything ``AsyncChatClient.chat`` accepts
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    id: str | None = None


#: What a batch accepts per row: a :class:`BatchRequest`, or a dict with ``messages`` (and an
#: optional ``id`` or ``custom_id``; other keys are parameters), or a string (one user turn).
RequestInput: TypeAlias = BatchRequest | Mapping[str, Any] | str


@attrs.frozen
class BatchResult:
    """What became of one row: a ``response``, or the typed ``error`` that ended it."""

    id: str
    index: int  #: position of the row in the input
    response: ChatResponse | None
    error: AzureMLChatError | None
    attempts: int  #: calls made for this row (0 when the row was invalid)
    latency: float | None  #: seconds of the successful call
    request: BatchRequest | None = attrs.field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the row got a reply."""
        return self.error is None


@attrs.frozen
class BatchStatus:
    """A live snapshot of a running batch (for progress displays)."""

    done: int  #: rows finished, failed ones included
    failed: int
    in_flight: int
    limit: int  #: the controller's current in-flight limit
    rate_limited: int  #: 429 replies so far
    paused_for: float  #: seconds left of a retry-after pause
    elapsed: float  #: seconds since the batch started


@attrs.frozen
class BatchSummary:
    """The totals of a finished (or stopped) batch."""

    rows: int
    succeeded: int
    failed: int
    failed_by_error: Mapping[str, int]  #: error type name -> rows
    attempts: int  #: calls made, retries included
    rate_limited: int  #: 429 replies
    prompt_tokens: int
    completion_tokens: int
    latency_p50: float | None  #: seconds, successful calls
    latency_p90: float | None
    latency_p99: float | None
    wall_time: float
    rows_per_second: float  #: successful rows per second of wall time (goodput)
    requests_per_second: float  #: calls per second of wall time
    final_limit: int

    def lines(self) -> list[tuple[str, str]]:
        """The summary as (label, value) pairs, in display order."""
        failures = ", ".join(f"{name} {count}" for name, count in sorted(self.failed_by_error.items()))

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.0f} ms"

        return [
            ("rows", str(self.rows)),
            ("succeeded", str(self.succeeded)),
            ("failed", f"{self.failed}{f' ({failures})' if failures else ''}"),
            ("calls", f"{self.attempts} ({self.rate_limited} answered 429)"),
            ("tokens in / out", f"{self.prompt_tokens} / {self.completion_tokens}"),
            (
                "latency p50 / p90 / p99",
                f"{seconds(self.latency_p50)} / {seconds(self.latency_p90)} / {seconds(self.latency_p99)}",
            ),
            ("wall time", f"{self.wall_time:.1f} s"),
            ("rows/s", f"{self.rows_per_second:.1f} ({self.requests_per_second:.1f} calls/s)"),
            ("final limit", str(self.final_limit)),
        ]

    def __str__(self) -> str:
        width = max(len(label) for label, _ in self.lines())
        return "\n".join(f"{label:<{width}}  {value}" for label, value in self.lines())


class LatencyHistogram:
    """Latency percentiles in bounded memory: log-spaced buckets 2% wide from 0.1 ms up."""

    _BASE = 1e-4
    _RATIO = math.log(1.02)

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count: int = 0

    def add(self, seconds: float) -> None:
        """Record one latency."""
        bucket = 0 if seconds <= self._BASE else int(math.log(seconds / self._BASE) / self._RATIO) + 1
        self._counts[bucket] = self._counts.get(bucket, 0) + 1
        self.count += 1

    def percentile(self, fraction: float) -> float | None:
        """The latency below which ``fraction`` of the recorded ones lie (within 2%); None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for bucket in sorted(self._counts):
            seen += self._counts[bucket]
            if seen >= rank:
                return self._BASE * math.exp(self._RATIO * bucket) if bucket else self._BASE
        raise AssertionError("unreachable: the ranks add up to count")  # pragma: no cover


Outcome: TypeAlias = Literal["overload", "retry", "final"]

_OVERLOAD_STATUS = frozenset({429, 503, 504})
_RETRY_STATUS = frozenset({408, 500, 502, 503, 504, 429})


def classify(error: AzureMLChatError, *, dedicated: bool = False) -> Outcome:
    """How the batch treats a failed call: ``"overload"`` (cut the limit and retry),
    ``"retry"`` (retry without cutting) or ``"final"`` (the row fails).

    429, 503, 504 and time-outs are overload; other 5xx, 408 (except on dedicated endpoints,
    where Azure's request time-out repeats deterministically), broken connections and 424
    model errors with a retryable container status are retried; everything else is final.
    """
    if isinstance(error, APITimeoutError | RateLimitError):
        return "overload"
    if isinstance(error, APIConnectionError):
        return "retry"
    if isinstance(error, ModelError):
        status = error.model_status if error.status_code == 424 else None
    elif isinstance(error, ServerError | APIStatusError):
        status = error.status_code
    else:
        return "final"
    if status in _OVERLOAD_STATUS:
        return "overload"
    if status in _RETRY_STATUS and not (status == 408 and dedicated):
        return "retry"
    return "final"


def _as_request(item: Any, index: int) -> BatchRequest:
    if isinstance(item, BatchRequest):
        return item if item.id is not None else attrs.evolve(item, id=str(index))
    if isinstance(item, str):
        return BatchRequest(item, id=str(index))
    if isinstance(item, Mapping):
        if "messages" not in item:
            raise InvalidRequestError(f"row {index} has no 'messages' (keys: {sorted(item)})")
        params = {key: value for key, value in item.items() if key not in ("messages", "id", "custom_id")}
        row_id = item.get("custom_id", item.get("id"))
        if row_id is not None and not isinstance(row_id, str):
            raise InvalidRequestError(f"row {index}: the id must be a string, not {type(row_id).__name__}")
        return BatchRequest(item["messages"], params, row_id if row_id is not None else str(index))
    raise InvalidRequestError(
        f"row {index} must be a BatchRequest, a dict with 'messages' or a string, not {type(item).__name__}"
    )


def _prompt_tokens(request: BatchRequest) -> int:
    """A cheap estimate (4 characters a token) for the token budget; the reply's usage settles it."""
    return len(repr(request.messages)) // 4


async def _iterate(requests: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(requests, AsyncIterable):
        async for item in requests:
            yield item
    else:
        for item in requests:
            yield item


class _Row:
    __slots__ = ("attempts", "grant", "index", "request", "ticket")

    def __init__(self, index: int, request: BatchRequest) -> None:
        self.index = index
        self.request = request
        self.attempts = 0
        self.ticket: Ticket | None = None
        self.grant = anyio.Event()


class BatchRun:
    """A running batch: an async context manager and an async iterator of :class:`BatchResult`.

    Made by :func:`run_batch`. Leaving the ``async with`` block early cancels the rows still
    running. :attr:`summary` is available once iteration ends; :meth:`status` at any time.
    """

    def __init__(
        self,
        client: AsyncChatClient,
        requests: Iterable[RequestInput] | AsyncIterable[RequestInput],
        *,
        controller: AIMDController,
        max_attempts: int,
        retry_backoff: float,
        max_backoff: float,
        max_stall: float,
    ) -> None:
        self._client = client
        self._requests = requests
        self.controller = controller
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self.max_stall = max_stall
        self._last_success = 0.0
        self._dedicated = getattr(client, "api_type", None) == "dedicated"
        self._ready: deque[_Row] = deque()  # rows whose retry is due, served before new rows
        self._open = 0
        self._wake: anyio.Event | None = None  # set whenever the dispatcher should look again
        self._started = 0.0
        self._ended: float | None = None
        self._done = self._failed = self._attempts = self._rate_limited = 0
        self._prompt_tokens = self._completion_tokens = 0
        self._failed_by_error: dict[str, int] = {}
        self._latencies = LatencyHistogram()
        self._group: TaskGroup | None = None
        self._send: MemoryObjectSendStream[BatchResult] | None = None
        self._receive: MemoryObjectReceiveStream[BatchResult] | None = None
        self._summary: BatchSummary | None = None

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise RuntimeError("a BatchRun can be entered once")
        self._started = self._last_success = time.monotonic()
        self._wake = anyio.Event()
        self._send, self._receive = anyio.create_memory_object_stream[BatchResult](64)
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._dispatch)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._group is not None
        assert self._receive is not None
        self._group.cancel_scope.cancel()  # rows still running when the caller stops are abandoned
        try:
            return await self._group.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:  # one failure (the input raised) reads better bare
            inner: BaseException = group
            while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
                inner = inner.exceptions[0]
            if inner is group:
                raise
            raise inner from None
        finally:
            self._receive.close()
            self._finish()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchResult:
        if self._receive is None:
            raise RuntimeError("use the batch inside 'async with run_batch(...) as run'")
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            self._finish()
            raise StopAsyncIteration from None

    def status(self) -> BatchStatus:
        """Rows done and failed, calls in flight, the current limit, 429s, time elapsed."""
        now = time.monotonic()
        return BatchStatus(
            done=self._done,
            failed=self._failed,
            in_flight=self.controller.in_flight,
            limit=self.controller.limit,
            rate_limited=self._rate_limited,
            paused_for=self.controller.paused_for(now),
            elapsed=(self._ended if self._ended is not None else now) - self._started,
        )

    @property
    def summary(self) -> BatchSummary:
        """Totals of the rows finished so far (final once iteration ended)."""
        if self._summary is not None:
            return self._summary
        return self._make_summary()

    def _finish(self) -> None:
        if self._summary is None:
            self._ended = time.monotonic()
            self._summary = self._make_summary()

    def _make_summary(self) -> BatchSummary:
        wall = (self._ended if self._ended is not None else time.monotonic()) - self._started
        per_second = 1.0 / wall if wall > 0 else 0.0
        succeeded = self._done - self._failed
        return BatchSummary(
            rows=self._done,
            succeeded=succeeded,
            failed=self._failed,
            failed_by_error=dict(self._failed_by_error),
            attempts=self._attempts,
            rate_limited=self._rate_limited,
            prompt_tokens=self._prompt_tokens,
            completion_tokens=self._completion_tokens,
            latency_p50=self._latencies.percentile(0.5),
            latency_p90=self._latencies.percentile(0.9),
            latency_p99=self._latencies.percentile(0.99),
            wall_time=wall,
            rows_per_second=succeeded * per_second,
            requests_per_second=self._attempts * per_second,
            final_limit=self.controller.limit,
        )

    # -- the dispatcher ---------------------------------------------------------------------

    def _max_open(self) -> int:
        """Rows admitted at once: enough to fill twice the limit, few enough to keep memory flat."""
        return 2 * self.controller.limit + 8

    async def _dispatch(self) -> None:
        assert self._send is not None
        source = _iterate(self._requests).__aiter__()
        index = 0
        exhausted = False
        async with self._send, anyio.create_task_group() as rows:
            while True:
                wake = self._wake = anyio.Event()
                if exhausted and self._open == 0:
                    return
                now = time.monotonic()
                delay = self.controller.send_delay(now)
                if delay == 0 and self._ready:
                    row = self._ready.popleft()
                    row.ticket = self._send_ticket(row, now)
                    row.grant.set()
                    continue
                if delay == 0 and not exhausted and self._open < self._max_open():
                    try:
                        item = await source.__anext__()
                    except StopAsyncIteration:
                        exhausted = True
                        continue
                    index += 1
                    try:
                        request = _as_request(item, index - 1)
                    except InvalidRequestError as error:
                        row_id = str(index - 1)
                        await self._emit(BatchResult(row_id, index - 1, None, error, 0, None, None))
                        continue
                    row = _Row(index - 1, request)
                    row.ticket = self._send_ticket(row, time.monotonic())
                    self._open += 1
                    rows.start_soon(self._run_row, row)
                    continue
                with anyio.move_on_after(math.inf if delay is None or delay == 0 else delay):
                    await wake.wait()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _send_ticket(self, row: _Row, now: float) -> Ticket:
        max_tokens = row.request.params.get("max_tokens")
        return self.controller.on_send(
            now,
            prompt_tokens=_prompt_tokens(row.request) if self.controller.max_tokens_per_minute else 0,
            max_completion_tokens=max_tokens if isinstance(max_tokens, int) else None,
        )

    async def _emit(self, result: BatchResult) -> None:
        assert self._send is not None
        self._done += 1
        if result.error is not None:
            self._failed += 1
            name = type(result.error).__name__
            self._failed_by_error[name] = self._failed_by_error.get(name, 0) + 1
        await self._send.send(result)

    # -- one row ----------------------------------------------------------------------------

    async def _run_row(self, row: _Row) -> None:
        try:
            await self._emit(await self._attempt_until_done(row))
        finally:
            self._open -= 1
            self._poke()

    async def _attempt_until_done(self, row: _Row) -> BatchResult:
        request = row.request
        assert request.id is not None
        while True:
            ticket = row.ticket
            assert ticket is not None
            row.attempts += 1
            self._attempts += 1
            started = time.monotonic()
            try:
                try:
                    response = await self._client.chat(request.messages, max_retries=0, **request.params)
                except TypeError as exc:  # chat() names its parameters: an unknown one is this row's mistake
                    raise InvalidRequestError(f"row {request.id!r}: {exc}") from None
            except AzureMLChatError as error:
                now = time.monotonic()
                outcome = classify(error, dedicated=self._dedicated)
                retry_after = error.retry_after if isinstance(error, APIStatusError) else None
                if isinstance(error, RateLimitError):
                    self._rate_limited += 1
                if outcome == "overload":
                    self.controller.on_overload(ticket, now, retry_after=retry_after)
                else:
                    self.controller.on_error(ticket, now)
                self._poke()
                # An overload is the endpoint asking to wait, not the row failing: it is retried as long
                # as some row got through within max_stall seconds. Other failures get max_attempts calls.
                if outcome == "overload":
                    give_up = now - self._last_success > self.max_stall
                else:
                    give_up = outcome == "final" or row.attempts >= self.max_attempts
                if give_up:
                    return BatchResult(request.id, row.index, None, error, row.attempts, None, request)
                await anyio.sleep(self._backoff(row.attempts, retry_after, outcome))
                row.grant = anyio.Event()
                self._ready.append(row)
                self._poke()
                await row.grant.wait()
                continue
            now = time.monotonic()
            usage = response.usage
            if usage is not None:
                self._prompt_tokens += usage.prompt_tokens
                self._completion_tokens += usage.completion_tokens
            self.controller.on_success(
                ticket,
                now,
                prompt_tokens=None if usage is None else usage.prompt_tokens,
                completion_tokens=None if usage is None else usage.completion_tokens,
            )
            self._latencies.add(now - started)
            self._last_success = now
            self._poke()
            return BatchResult(request.id, row.index, response, None, row.attempts, now - started, request)

    def _backoff(self, attempt: int, retry_after: float | None, outcome: Outcome) -> float:
        """Exponential backoff with jitter, never shorter than the server's ``retry-after``.

        An overload answered without ``retry-after`` is queued again at once while the
        adaptive limit can still go down: the controller has just cut it, so the retry waits
        for a free slot like every other row, and a wait here would only leave the endpoint
        idle at the end of the batch.
        """
        controller = self.controller
        if (
            outcome == "overload"
            and retry_after is None
            and controller.adaptive
            and controller.limit > controller.min_limit
        ):
            return 0.0
        wait: float = min(self.max_backoff, self.retry_backoff * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            wait = max(wait, min(retry_after, controller.max_pause))
        return wait


def _options(
    concurrency: int | Literal["adaptive"],
    max_requests_per_minute: float | None,
    max_tokens_per_minute: float | None,
    controller: AIMDController | None,
    max_attempts: int,
    retry_backoff: float,
    max_backoff: float,
    max_stall: float,
) -> dict[str, Any]:
    """The checked keyword arguments of a :class:`BatchRun`."""
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConfigurationError(f"max_attempts must be a whole number >= 1, not {max_attempts!r}")
    if not retry_backoff >= 0 or not max_backoff >= 0 or not max_stall >= 0:
        raise ConfigurationError("retry_backoff, max_backoff and max_stall must be >= 0 seconds")
    options: dict[str, Any] = {
        "max_attempts": max_attempts,
        "retry_backoff": retry_backoff,
        "max_backoff": max_backoff,
        "max_stall": max_stall,
    }
    if controller is not None:
        if max_requests_per_minute is not None or max_tokens_per_minute is not None or concurrency != "adaptive":
            raise ConfigurationError("give the budgets and the concurrency to the controller you pass, not beside it")
        return {**options, "controller": controller}
    if concurrency == "adaptive":
        adaptive = AIMDController(
            max_requests_per_minute=max_requests_per_minute, max_tokens_per_minute=max_tokens_per_minute
        )
        return {**options, "controller": adaptive}
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be 'adaptive' or a whole number >= 1, not {concurrency!r}")
    fixed = AIMDController(
        initial_limit=concurrency,
        max_limit=concurrency,
        adaptive=False,
        max_requests_per_minute=max_requests_per_minute,
        max_tokens_per_minute=max_tokens_per_minute,
    )
    return {**options, "controller": fixed}


def run_batch(
    client: AsyncChatClient,
    requests: Iterable[RequestInput] | AsyncIterable[RequestInput],
    *,
    concurrency: int | Literal["adaptive"] = "adaptive",
    max_requests_per_minute: float | None = None,
    max_tokens_per_minute: float | None = None,
    controller: AIMDController | None = None,
    max_attempts: int = 8,
    retry_backoff: float = 0.5,
    max_backoff: float = 30.0,
    max_stall: float = 300.0,
) -> BatchRun:
    """Send every request through ``client``; use as ``async with run_batch(...) as run: async for result in run``.

    ``requests`` is any iterable or async iterable of :data:`RequestInput`; it is read
    lazily, as the limit allows. Results come in completion order, each tagged with its
    row's ``id`` and ``index``. ``concurrency`` is ``"adaptive"`` (AIMD from a limit of 2)
    or a fixed number of calls in flight. ``max_requests_per_minute`` and
    ``max_tokens_per_minute`` are optional budgets. Pass a ``controller`` instead to tune
    the AIMD parameters, or to share its state (the limit learnt) across several runs.

    A failed call is retried when it is worth it, up to ``max_attempts`` calls per row for
    5xx answers and broken connections (after ``retry_backoff`` * 2**n seconds with jitter,
    at most ``max_backoff``, never sooner than the server's ``retry-after``); then the row is
    a result with the last error. Overloads (429, 503, 504, time-outs) are the endpoint asking
    to wait: they are retried as long as any row succeeded within the last ``max_stall``
    seconds, so a quota that runs dry and refills loses no row.
    """
    options = _options(
        concurrency,
        max_requests_per_minute,
        max_tokens_per_minute,
        controller,
        max_attempts,
        retry_backoff,
        max_backoff,
        max_stall,
    )
    return BatchRun(client, requests, **options)


class SyncBatchRun:
    """:func:`run_batch` for synchronous code: a context manager and an iterator of results.

    The batch runs on an event loop in a helper thread (an anyio blocking portal). Made by
    :func:`run_batch_sync`.
    """

    def __init__(
        self,
        client_factory: Callable[[], AsyncChatClient],
        requests: Iterable[RequestInput],
        options: Mapping[str, Any],
    ) -> None:
        self._client_factory = client_factory
        self._requests = requests
        self._options = dict(options)
        self._portal_cm: Any = None
        self._portal: BlockingPortal | None = None
        self._run: BatchRun | None = None
        self._run_cm: Any = None
        self._own_client: AsyncChatClient | None = None

    def __enter__(self) -> Self:
        if self._portal_cm is not None:
            raise RuntimeError("a SyncBatchRun can be entered once")
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        portal = self._portal = self._portal_cm.__enter__()
        try:
            # the client lives and dies on the portal's loop: its connections belong to that loop
            client = self._own_client = portal.call(_make_client, self._client_factory)
            self._run = portal.call(_make_run, client, self._requests, self._options)
            self._run_cm = portal.wrap_async_context_manager(self._run)
            self._run_cm.__enter__()
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._run_cm.__exit__(exc_type, exc, tb)
        finally:
            self._close()

    def _close(self) -> None:
        try:
            if self._own_client is not None and self._portal is not None:
                self._portal.call(self._own_client.aclose)
        finally:
            self._own_client = None
            self._portal_cm.__exit__(None, None, None)

    def __iter__(self) -> Iterator[BatchResult]:
        if self._portal is None or self._run is None:
            raise RuntimeError("use the batch inside 'with run_batch_sync(...) as run'")
        while True:
            try:
                yield self._portal.call(self._run.__anext__)
            except StopAsyncIteration:
                return

    def status(self) -> BatchStatus:
        """See :meth:`BatchRun.status`."""
        if self._run is None:
            raise RuntimeError("the batch has not started")
        return self._run.status()

    @property
    def summary(self) -> BatchSummary:
        """See :attr:`BatchRun.summary`."""
        if self._run is None:
            raise RuntimeError("the batch has not started")
        return self._run.summary


async def _make_client(factory: Callable[[], AsyncChatClient]) -> AsyncChatClient:
    return factory()  # made inside the portal's event loop, which will use and close it


async def _make_run(client: AsyncChatClient, requests: Iterable[RequestInput], options: Mapping[str, Any]) -> BatchRun:
    return BatchRun(client, requests, **options)


def run_batch_sync(
    client_factory: Callable[[], AsyncChatClient],
    requests: Iterable[RequestInput],
    *,
    concurrency: int | Literal["adaptive"] = "adaptive",
    max_requests_per_minute: float | None = None,
    max_tokens_per_minute: float | None = None,
    controller: AIMDController | None = None,
    max_attempts: int = 8,
    retry_backoff: float = 0.5,
    max_backoff: float = 30.0,
    max_stall: float = 300.0,
) -> SyncBatchRun:
    """:func:`run_batch` from synchronous code: ``with run_batch_sync(...) as run: for result in run``.

    ``client_factory`` makes the client (``lambda: AsyncChatClient(url, api_key=key,
    max_retries=0)``): it is made, used and closed on the batch's own event loop, since an
    async client's connections belong to the loop that opened them. The other arguments
    are those of :func:`run_batch`.
    """
    options = _options(
        concurrency,
        max_requests_per_minute,
        max_tokens_per_minute,
        controller,
        max_attempts,
        retry_backoff,
        max_backoff,
        max_stall,
    )
    if not callable(client_factory):
        raise ConfigurationError(
            "run_batch_sync takes a function that makes the client, e.g. lambda: AsyncChatClient(...)"
        )
    return SyncBatchRun(client_factory, requests, options)
