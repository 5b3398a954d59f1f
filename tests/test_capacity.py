"""The local endpoint's capacity model: in-flight limit, requests-per-minute budget, service time.

Over HTTP against ``LocalEndpoint``; the budget runs on a fake clock so every wait is exact.
The ``Capacity`` object itself is checked without sockets at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from azml_chat.testing import ChatTurn, Fault, LocalEndpoint, echo_responder
from azml_chat.testing._capacity import Capacity

AUTH = {"api-key": "test-key"}
Factory = Callable[..., LocalEndpoint]


def chat(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


async def settle(ep: LocalEndpoint) -> None:
    """Wait (bounded) until every slot is given back: the server releases after the last byte."""
    for _ in range(1000):
        if ep.capacity_stats.in_flight == 0:
            return
        await anyio.sleep(0.001)
    raise AssertionError(f"slots still taken: {ep.capacity_stats}")


async def _in_flight_limit() -> None:
    release = anyio.Event()
    all_in = anyio.Event()
    arrived = 0

    async def held(turn: ChatTurn) -> str:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            all_in.set()
        await release.wait()
        return echo_responder(turn)

    async with (
        LocalEndpoint(capacity=2, responder=held) as ep,
        httpx.AsyncClient(headers=AUTH, timeout=10) as client,
    ):
        results: dict[int, httpx.Response] = {}

        async def call(i: int) -> None:
            results[i] = await client.post(ep.url, json=chat(f"held {i}"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, 0)
            tg.start_soon(call, 1)
            await all_in.wait()
            assert ep.capacity_stats.in_flight == 2
            over = await client.post(ep.url, json=chat("over"))
            assert over.status_code == 429
            assert over.json()["error"]["code"] == "TooManyRequests"
            assert "at most 2 requests at once" in over.json()["error"]["message"]
            assert over.headers["x-ms-error-code"] == "TooManyRequests"
            assert "retry-after" not in over.headers and "retry-after-ms" not in over.headers
            assert "x-request-id" in over.headers
            ep.retry_after = 1.5
            over = await client.post(ep.score_url, json={"input_data": {"input_string": [chat()["messages"][0]]}})
            assert over.status_code == 429  # /score shares the same slots
            assert (over.headers["retry-after"], over.headers["retry-after-ms"]) == ("2", "1500")
            # not model requests: no capacity used
            assert (await client.get(ep.base_url + "/info")).status_code == 200
            assert (await client.get(ep.base_url + "/")).status_code == 200
            # a fault that replaces the reply comes first
            ep.add_fault(Fault(503))
            assert (await client.post(ep.url, json=chat())).status_code == 503
            # auth is checked before capacity
            assert (await client.post(ep.url, json=chat(), headers={"api-key": "wrong"})).status_code == 401
            release.set()
        assert {i: (r.status_code, r.json()["choices"][0]["message"]["content"]) for i, r in results.items()} == {
            0: (200, "held 0"),
            1: (200, "held 1"),
        }
        await settle(ep)
        ok = await client.post(ep.url, json=chat("room again"))
        assert ok.status_code == 200
        assert "x-ratelimit-remaining-requests" not in ok.headers  # no budget set
        await settle(ep)
        stats = ep.capacity_stats
        assert (stats.admitted, stats.rejected_in_flight, stats.rejected_rate) == (3, 2, 0)
        assert (stats.in_flight, stats.peak_in_flight, stats.rejected) == (0, 2, 2)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_in_flight_limit(backend: str) -> None:
    anyio.run(_in_flight_limit, backend=backend)


def test_budget_per_minute_with_exact_waits(azml_endpoint_factory: Factory) -> None:
    now = [100.0]
    ep = azml_endpoint_factory(requests_per_minute=3, clock=lambda: now[0])
    with httpx.Client(headers=AUTH, timeout=10) as c:
        remaining = []
        for i in range(3):
            now[0] = 100.0 + i
            r = c.post(ep.url, json=chat())
            assert r.status_code == 200
            assert r.headers["x-ratelimit-limit-requests"] == "3"
            remaining.append(r.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["2", "1", "0"]
        r = c.post(ep.url, json=chat())
        assert r.status_code == 429
        assert (r.headers["retry-after"], r.headers["retry-after-ms"]) == ("58", "58000")  # 100 + 60 - 102
        assert "Please retry after 58 seconds" in r.json()["error"]["message"]
        now[0] = 130.25
        r = c.post(ep.url, json=chat())
        assert (r.status_code, r.headers["retry-after"], r.headers["retry-after-ms"]) == (429, "30", "29750")
        assert c.get(ep.base_url + "/info").status_code == 200  # spends no budget
        now[0] = 160.0  # the first admission leaves the window
        r = c.post(ep.url, json=chat())
        assert (r.status_code, r.headers["x-ratelimit-remaining-requests"]) == (200, "0")
        r = c.post(ep.url, json=chat())
        assert (r.status_code, r.headers["retry-after-ms"]) == (429, "1000")  # refusals spent nothing
        now[0] = 1000.0
        r = c.post(ep.url, json=chat())
        assert (r.status_code, r.headers["x-ratelimit-remaining-requests"]) == (200, "2")
    stats = ep.capacity_stats
    assert (stats.admitted, stats.rejected_rate, stats.rejected_in_flight) == (5, 3, 0)


def test_budget_over_a_short_window_and_settings_changed_live(azml_endpoint_factory: Factory) -> None:
    now = [0.0]
    ep = azml_endpoint_factory(requests_per_minute=120, rate_window=1, clock=lambda: now[0])
    with httpx.Client(headers=AUTH, timeout=10) as c:
        statuses = [c.post(ep.url, json=chat()).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]  # 120/min over 1 s windows: 2 per second
        now[0] = 0.75
        r = c.post(ep.url, json=chat())
        assert (r.status_code, r.headers["retry-after"], r.headers["retry-after-ms"]) == (429, "1", "250")
        now[0] = 1.0
        assert c.post(ep.url, json=chat()).status_code == 200
        ep.requests_per_minute = None  # lifted while serving
        assert [c.post(ep.url, json=chat()).status_code for _ in range(5)] == [200] * 5
        ep.capacity = 1
        ep.requests_per_minute = 6000
        r = c.post(ep.url, json=chat())
        assert (r.status_code, r.headers["x-ratelimit-limit-requests"]) == (200, "100")


def test_service_time_holds_the_slot(azml_endpoint_factory: Factory) -> None:
    ep = azml_endpoint_factory(capacity=1, service_time=0.05)
    with httpx.Client(headers=AUTH, timeout=10) as c:
        start = time.monotonic()
        r = c.post(ep.url, json=chat("served"))
        assert time.monotonic() - start >= 0.05  # a lower bound: sleeps never end early
        assert r.json()["choices"][0]["message"]["content"] == "served"
        ep.service_time = 0
        assert c.post(ep.url, json=chat()).status_code == 200
        ep.service_time = 0.05  # invalid bodies are refused before the service time
        assert c.post(ep.url, json={"messages": []}).status_code == 422


async def _abandoned_requests_give_back_their_slot() -> None:
    failures: list[BaseException] = []

    async def long_call(url: str) -> None:
        async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
            try:
                await client.post(url, json=chat())
            except httpx.TransportError as exc:
                failures.append(exc)

    async with anyio.create_task_group() as tg:
        async with LocalEndpoint(capacity=1, service_time=30) as ep:
            tg.start_soon(long_call, ep.url)
            for _ in range(2000):
                if ep.capacity_stats.in_flight:
                    break
                await anyio.sleep(0.001)
            assert ep.capacity_stats.in_flight == 1
            async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
                assert (await client.post(ep.url, json=chat())).status_code == 429
        # leaving the endpoint cancelled the request in its service time
        assert ep.capacity_stats.in_flight == 0
    assert len(failures) == 1


def test_abandoned_requests_give_back_their_slot() -> None:
    anyio.run(_abandoned_requests_give_back_their_slot)


def test_drops_and_errors_give_back_their_slot(azml_endpoint_factory: Factory) -> None:
    def boom(turn: ChatTurn) -> str:
        raise RuntimeError("kaput")

    ep = azml_endpoint_factory(capacity=1)
    with httpx.Client(headers=AUTH, timeout=10) as c:
        ep.add_fault(Fault(drop="in_body"))
        with pytest.raises(httpx.RemoteProtocolError):
            c.post(ep.url, json=chat())
        ep.add_fault(Fault(drop="mid_stream"))
        with pytest.raises(httpx.RemoteProtocolError):
            c.post(ep.url, json=chat(stream=True))
        ep.responder = boom
        assert c.post(ep.url, json=chat()).status_code == 500
        ep.responder = echo_responder
        anyio.run(settle, ep)
        assert c.post(ep.url, json=chat("still one slot")).status_code == 200
    assert ep.capacity_stats.rejected == 0


def test_capacity_settings_are_checked() -> None:
    for kwargs, match in [
        ({"capacity": 0}, "capacity"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"rate_window": float("inf")}, "rate_window"),
        ({"retry_after": -1}, "retry_after"),
        ({"service_time": float("nan")}, "service_time"),
    ]:
        with pytest.raises(ValueError, match=match):
            LocalEndpoint(**kwargs)


# -- the Capacity object, without sockets -----------------------------------------------


def test_capacity_unit_in_flight_then_budget() -> None:
    cap = Capacity(max_in_flight=2, requests_per_minute=3, retry_after=0.5)
    assert cap.limited
    assert cap.admit(0.0) is None
    assert cap.admit(0.0) is None
    full = cap.admit(0.0)
    assert full is not None and (full.reason, full.retry_after) == ("in_flight", 0.5)
    cap.release()
    assert cap.admit(10.0) is None
    cap.release()
    budget = cap.admit(20.0)  # the in-flight limit has room, the budget has not
    assert budget is not None and budget.reason == "rate"
    assert budget.retry_after == pytest.approx(40.0)
    assert cap.remaining() == 0
    cap.requests_per_minute = 4  # raised live: room at once
    assert cap.admit(20.0) is None
    assert cap.stats().in_flight == 2
    assert Capacity().admit(0.0) is None and not Capacity().limited
    assert Capacity().remaining() is None


def test_capacity_unit_budget_lowered_below_its_use() -> None:
    cap = Capacity(requests_per_minute=4)
    for t in (0.0, 1.0, 2.0, 3.0):
        assert cap.admit(t) is None
    cap.requests_per_minute = 2
    refused = cap.admit(5.0)
    # two must leave the window before a third fits: the one admitted at 2.0 leaves at 62.0
    assert refused is not None and refused.retry_after == pytest.approx(57.0)
    assert cap.admit(62.0) is None
