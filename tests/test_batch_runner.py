"""run_batch and run_batch_sync over real HTTP against the embedded endpoint, with scripted faults."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from support import API_KEY

from azml_chat import (
    APIConnectionError,
    APITimeoutError,
    AsyncChatClient,
    BadRequestError,
    ConfigurationError,
    InvalidRequestError,
    ModelError,
    RateLimitError,
    ServerError,
)
from azml_chat.batch import AIMDController, BatchRequest, classify, run_batch, run_batch_sync
from azml_chat.batch.runner import LatencyHistogram
from azml_chat.testing import ChatTurn, Fault, LocalEndpoint

pytestmark = pytest.mark.anyio


def client_for(endpoint: LocalEndpoint, **settings: Any) -> AsyncChatClient:
    return AsyncChatClient(endpoint.url, api_key=API_KEY, max_retries=0, timeout=10, **settings)


def rows(count: int) -> list[dict[str, Any]]:
    return [{"id": f"row-{i}", "messages": [{"role": "user", "content": f"question {i}"}]} for i in range(count)]


async def collect(endpoint: LocalEndpoint, requests: Any, **options: Any) -> tuple[list[Any], Any]:
    async with client_for(endpoint) as client, run_batch(client, requests, retry_backoff=0.001, **options) as run:
        results = [result async for result in run]
    return results, run.summary


async def test_every_row_gets_one_result_tagged_with_its_id(endpoint: LocalEndpoint) -> None:
    results, summary = await collect(endpoint, rows(60))
    assert sorted(result.index for result in results) == list(range(60))
    for result in results:
        assert result.ok
        assert result.response.content == f"question {result.index}"
        assert result.id == f"row-{result.index}"
        assert result.attempts == 1
        assert result.latency is not None
    assert len(endpoint.requests) == 60
    assert summary.rows == summary.succeeded == 60
    assert summary.failed == 0
    assert summary.prompt_tokens == summary.completion_tokens == 120  # the echo endpoint counts words
    assert summary.latency_p50 is not None
    assert summary.latency_p50 <= summary.latency_p90 <= summary.latency_p99  # type: ignore[operator]
    assert summary.rows_per_second > 0
    assert summary.attempts == 60
    assert summary.final_limit > 2  # grew from the initial 2 on healthy replies
    text = str(summary)
    assert "succeeded" in text
    assert "60" in text


async def test_rows_may_be_requests_dicts_or_strings_and_params_reach_the_endpoint(endpoint: LocalEndpoint) -> None:
    requests = [
        BatchRequest("plain string", {"temperature": 0.5}, id="a"),
        BatchRequest([{"role": "user", "content": "no id"}]),
        {"custom_id": "c", "messages": "dict row", "max_tokens": 7},
        "just text",
    ]
    results, _ = await collect(endpoint, requests)
    by_id = {result.id: result for result in results}
    assert set(by_id) == {"a", "1", "c", "3"}
    assert by_id["3"].response.content == "just text"
    bodies = {request.json["messages"][-1]["content"]: request.json for request in endpoint.requests}
    assert bodies["plain string"]["temperature"] == 0.5
    assert bodies["dict row"]["max_tokens"] == 7
    assert "custom_id" not in bodies["dict row"]


async def test_failed_rows_are_results_with_typed_errors_never_exceptions(endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(400, body={"error": {"code": "BadParam", "message": "temperature too high"}}))
    results, summary = await collect(
        endpoint,
        [*rows(5), {"id": "broken"}, 42, {"id": 7, "messages": "x"}, {"messages": "x", "top_k": 3}],
        concurrency=1,
    )
    failed = {result.id: result.error for result in results if not result.ok}
    assert isinstance(failed["row-0"], BadRequestError)
    assert failed["row-0"].status_code == 400
    assert failed["row-0"].request_id
    assert "temperature too high" in str(failed["row-0"])
    assert isinstance(failed["5"], InvalidRequestError)
    assert "no 'messages'" in str(failed["5"])
    assert isinstance(failed["6"], InvalidRequestError)
    assert isinstance(failed["7"], InvalidRequestError)
    assert isinstance(failed["8"], InvalidRequestError)  # chat() has no top_k: extra_body={"top_k": 3} has
    assert "top_k" in str(failed["8"])
    assert summary.rows == 9
    assert summary.failed == 5
    assert summary.failed_by_error == {"BadRequestError": 1, "InvalidRequestError": 4}
    assert "BadRequestError 1" in str(summary)


async def test_retryable_failures_are_retried_until_max_attempts(endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(500, times=2))
    endpoint.add_fault(Fault(429, times=3))
    results, summary = await collect(endpoint, rows(1), max_attempts=6)
    assert results[0].ok
    assert results[0].attempts == 6
    assert summary.rate_limited == 3
    assert summary.attempts == 6
    endpoint.clear()
    endpoint.add_fault(Fault(500, times=3))
    results, summary = await collect(endpoint, rows(1), max_attempts=3)
    assert isinstance(results[0].error, ServerError)
    assert results[0].attempts == 3
    assert summary.failed_by_error == {"ServerError": 1}


async def test_overloads_are_retried_until_the_endpoint_stalls(endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(429, times=12))
    results, _ = await collect(endpoint, rows(1), max_attempts=2)  # 429s do not spend max_attempts
    assert results[0].ok
    assert results[0].attempts == 13
    endpoint.add_fault(Fault(503, times=1000))
    results, summary = await collect(endpoint, rows(2), max_stall=0.05, concurrency=1)
    assert [type(result.error) for result in results] == [ServerError, ServerError]  # nothing got through
    assert summary.failed_by_error == {"ServerError": 2}


async def test_a_429_cuts_the_limit_and_its_retry_after_pauses_the_whole_batch(endpoint: LocalEndpoint) -> None:
    arrivals: list[float] = []

    async def record(turn: ChatTurn) -> str:
        arrivals.append(time.monotonic())
        await anyio.sleep(0.05)  # the first wave is still in flight when the 429 comes back
        return "ok"

    endpoint.responder = record
    controller = AIMDController(initial_limit=4, adaptive=True)
    endpoint.add_fault(Fault(429, headers={"retry-after-ms": "300"}))
    async with client_for(endpoint) as client, run_batch(client, rows(20), controller=controller) as run:
        results = [result async for result in run]
    assert all(result.ok for result in results)
    assert controller.cuts == 1
    assert controller.overloads == 1
    assert run.summary.rate_limited == 1
    # the 429 went out with the first sends; every request after it waited out the pause
    assert len(arrivals) == 20
    first_after_pause = sorted(arrivals)[3]  # at most 3 other rows were in flight with it
    assert first_after_pause - arrivals[0] >= 0.29


async def test_time_outs_count_as_overload(endpoint: LocalEndpoint) -> None:
    endpoint.add_fault(Fault(delay_before_headers=2.0))
    controller = AIMDController(initial_limit=4)
    async with (
        AsyncChatClient(endpoint.url, api_key=API_KEY, max_retries=0, timeout=0.2) as client,
        run_batch(client, rows(3), controller=controller, retry_backoff=0.001) as run,
    ):
        results = [result async for result in run]
    assert all(result.ok for result in results)
    assert controller.overloads == 1
    assert sorted(result.attempts for result in results) == [1, 1, 2]


async def test_fixed_concurrency_never_exceeds_its_limit(endpoint: LocalEndpoint) -> None:
    in_flight = peak = 0

    async def slow(turn: ChatTurn) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        return "ok"

    endpoint.responder = slow
    results, summary = await collect(endpoint, rows(40), concurrency=3)
    assert len(results) == 40
    assert peak == 3
    assert summary.final_limit == 3


async def test_the_input_is_read_lazily_so_memory_stays_bounded(endpoint: LocalEndpoint) -> None:
    pulled = 0

    def endless() -> Iterator[str]:
        nonlocal pulled
        while True:
            pulled += 1
            yield f"row {pulled}"

    async with client_for(endpoint) as client, run_batch(client, endless(), concurrency=4) as run:
        consumed = 0
        async for _ in run:
            consumed += 1
            if consumed == 100:
                break
    assert pulled <= consumed + 2 * 4 + 8 + 64 + 1  # open rows + the result buffer, never the whole input


async def test_async_iterables_are_accepted(endpoint: LocalEndpoint) -> None:
    async def source() -> AsyncIterator[str]:
        for i in range(10):
            await anyio.lowlevel.checkpoint()
            yield f"async {i}"

    results, summary = await collect(endpoint, source())
    assert sorted(result.response.content for result in results) == sorted(f"async {i}" for i in range(10))
    assert summary.succeeded == 10


async def test_an_input_that_raises_stops_the_batch_with_its_exception(endpoint: LocalEndpoint) -> None:
    def broken() -> Iterator[str]:
        yield "fine"
        raise KeyError("input file vanished")

    with pytest.raises(KeyError, match="vanished"):
        await collect(endpoint, broken())


async def test_status_reports_progress_while_running(endpoint: LocalEndpoint) -> None:
    async with client_for(endpoint) as client, run_batch(client, rows(10), concurrency=2) as run:
        first = run.status()
        assert first.done == 0
        statuses = [run.status() async for _ in run]
    assert statuses[-1].done == 10
    assert statuses[-1].limit == 2
    assert run.status().elapsed == run.summary.wall_time


async def test_misuse_and_bad_options_are_reported(endpoint: LocalEndpoint) -> None:
    async with client_for(endpoint) as client:
        run = run_batch(client, rows(1))
        with pytest.raises(RuntimeError, match="async with"):
            await run.__anext__()
        async with run:
            with pytest.raises(RuntimeError, match="once"):
                await run.__aenter__()
            assert [result.ok async for result in run] == [True]
        for options, match in [
            ({"concurrency": 0}, "concurrency"),
            ({"concurrency": "fast"}, "concurrency"),
            ({"max_attempts": 0}, "max_attempts"),
            ({"retry_backoff": -1.0}, "retry_backoff"),
            ({"max_stall": -1.0}, "max_stall"),
            ({"controller": AIMDController(), "concurrency": 4}, "controller"),
        ]:
            with pytest.raises(ConfigurationError, match=match):
                run_batch(client, [], **options)


def test_run_batch_sync_with_a_client_factory(endpoint: LocalEndpoint) -> None:
    with run_batch_sync(lambda: client_for(endpoint), rows(12), concurrency=4) as run:
        assert run.status().done == 0
        contents = sorted(result.response.content for result in run)
    assert contents == sorted(f"question {i}" for i in range(12))
    assert run.summary.succeeded == 12


def test_run_batch_sync_misuse(endpoint: LocalEndpoint) -> None:
    with pytest.raises(ConfigurationError, match="function that makes the client"):
        run_batch_sync(client_for(endpoint), [])  # type: ignore[arg-type]
    unstarted = run_batch_sync(lambda: client_for(endpoint), [])
    with pytest.raises(RuntimeError, match="not started"):
        unstarted.status()
    with pytest.raises(RuntimeError, match="not started"):
        _ = unstarted.summary
    with pytest.raises(RuntimeError, match="with run_batch_sync"):
        list(unstarted)


def test_run_batch_sync_closes_its_loop_when_the_factory_fails() -> None:
    def factory() -> AsyncChatClient:
        raise ConfigurationError("no endpoint URL")

    with pytest.raises(ConfigurationError, match="no endpoint"), run_batch_sync(factory, []):
        pass


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (RateLimitError("slow down", status_code=429), "overload"),
        (APITimeoutError("timed out"), "overload"),
        (ServerError("busy", status_code=503), "overload"),
        (ServerError("gateway", status_code=504), "overload"),
        (ServerError("boom", status_code=500), "retry"),
        (ServerError("slow model", status_code=408), "retry"),
        (APIConnectionError("reset"), "retry"),
        (ModelError("container", status_code=424, model_status=429), "overload"),
        (ModelError("container", status_code=424, model_status=500), "retry"),
        (ModelError("container", status_code=424, model_status=400), "final"),
        (ModelError("error body", status_code=200), "final"),
        (BadRequestError("bad", status_code=400), "final"),
        (InvalidRequestError("bad messages"), "final"),
    ],
)
def test_classify(error: Any, outcome: str) -> None:
    assert classify(error) == outcome


def test_a_408_on_a_dedicated_endpoint_is_final() -> None:
    assert classify(ServerError("timed out in Azure", status_code=408), dedicated=True) == "final"


def test_latency_histogram_percentiles_within_two_percent() -> None:
    histogram = LatencyHistogram()
    assert histogram.percentile(0.5) is None
    for millis in range(1, 1001):
        histogram.add(millis / 1000)
    histogram.add(0.0)
    assert histogram.percentile(0.5) == pytest.approx(0.5, rel=0.02)
    assert histogram.percentile(0.99) == pytest.approx(0.99, rel=0.02)
    assert histogram.percentile(0.0001) == pytest.approx(1e-4)


async def test_adaptive_limit_finds_the_capacity_of_the_endpoint() -> None:
    with LocalEndpoint(api_key=API_KEY, capacity=4, service_time=0.02) as endpoint:
        controller = AIMDController()
        results, summary = await collect(endpoint, rows(150), controller=controller)
        stats = endpoint.capacity_stats
    assert all(result.ok for result in results)
    assert stats.peak_in_flight == 4
    assert stats.admitted == 150
    assert summary.rate_limited == stats.rejected_in_flight > 0  # it found the edge...
    assert controller.ceiling is not None or controller.cuts > 0
    assert 3 <= controller.limit <= 6  # ...and stays near it
    assert summary.rate_limited < 0.2 * summary.attempts


async def test_a_requests_per_minute_budget_keeps_a_quota_free_of_429s() -> None:
    with LocalEndpoint(api_key=API_KEY, requests_per_minute=1200, rate_window=1.0) as endpoint:  # 20 per second
        results, summary = await collect(endpoint, rows(30), max_requests_per_minute=1100)
        assert endpoint.capacity_stats.rejected_rate == 0
        assert summary.rate_limited == 0
        assert all(result.ok for result in results)
        # without the budget the quota answers 429 with its exact wait, which pauses the whole batch
        results, summary = await collect(endpoint, rows(60))
        assert all(result.ok for result in results)
        assert summary.rate_limited == endpoint.capacity_stats.rejected_rate > 0
