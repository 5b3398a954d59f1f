"""The AIMD controller without sockets: outcomes and clock readings in, decisions out."""

from __future__ import annotations

import heapq
import itertools
import math

import pytest

from azml_chat import ConfigurationError
from azml_chat.batch import AIMDController, Ticket


def fill(controller: AIMDController, now: float = 0.0) -> list[Ticket]:
    """Send until the controller says wait."""
    tickets = []
    while controller.send_delay(now) == 0:
        tickets.append(controller.on_send(now))
    return tickets


def test_slow_start_doubles_the_limit_every_round_trip() -> None:
    controller = AIMDController()
    limits = []
    for round_trip in range(4):
        now = float(round_trip)
        tickets = fill(controller, now)
        assert controller.send_delay(now) is None  # full: wait for a reply
        for ticket in tickets:
            controller.on_success(ticket, now + 0.5)
        limits.append(controller.limit)
    assert limits == [4, 8, 16, 32]


def test_first_overload_halves_then_later_ones_cut_by_backoff() -> None:
    controller = AIMDController(initial_limit=16)
    tickets = fill(controller)
    controller.on_overload(tickets[0], 1.0)
    assert controller.limit == 8
    assert controller.ceiling == 16
    for ticket in tickets[1:9]:  # sent before the cut: the same congestion event, no new cut
        controller.on_overload(ticket, 1.1)
    assert controller.limit == 8
    assert controller.cuts == 1
    assert controller.overloads == 9
    later = controller.on_send(2.0)
    controller.on_overload(later, 2.1)
    assert controller.limit == math.floor(8 * 0.9)
    assert controller.cuts == 2


def test_growth_is_one_per_round_trip_below_the_ceiling_and_slow_just_under_it() -> None:
    controller = AIMDController(initial_limit=20, probe_patience=10)
    controller.on_overload(controller.on_send(0.0), 0.0)  # ceiling 20, limit 10, slow start over
    assert (controller.limit, controller.ceiling) == (10, 20)
    now = 1.0
    replies = 0
    while controller.limit < 19:
        for ticket in fill(controller, now):
            controller.on_success(ticket, now)
            replies += 1
        now += 1
    assert replies < 200  # 10 + 11 + ... + 18 replies: one step per window
    replies = 0
    while controller.limit < 20:
        for ticket in fill(controller, now):
            controller.on_success(ticket, now)
            replies += 1
        now += 1
    assert replies >= 19 * 10  # just under the ceiling: ten windows per step
    assert controller.ceiling == 20
    while controller.limit < 21:
        for ticket in fill(controller, now):
            controller.on_success(ticket, now)
        now += 1
    assert controller.ceiling is None  # passed the old ceiling unharmed: forgotten


def test_an_idle_limit_does_not_grow() -> None:
    controller = AIMDController(initial_limit=10)
    for step in range(100):
        ticket = controller.on_send(float(step))  # one at a time: the limit is not the bottleneck
        controller.on_success(ticket, step + 0.5)
    assert controller.limit == 10


def test_the_limit_stays_within_its_bounds() -> None:
    controller = AIMDController(initial_limit=3, min_limit=2, max_limit=5)
    for step in range(20):
        for ticket in fill(controller, float(step)):
            controller.on_success(ticket, float(step))
    assert controller.limit == 5
    for step in range(20):
        controller.on_overload(controller.on_send(100.0 + step), 100.0 + step)
    assert controller.limit == 2


def test_fixed_limit_never_moves_but_still_pauses() -> None:
    controller = AIMDController(initial_limit=4, adaptive=False)
    tickets = fill(controller)
    assert len(tickets) == 4
    controller.on_overload(tickets[0], 1.0, retry_after=2.0)
    assert controller.limit == 4
    assert controller.send_delay(1.0) == pytest.approx(2.0)
    for ticket in tickets[1:]:
        controller.on_success(ticket, 1.5)
    assert controller.limit == 4
    assert controller.send_delay(3.0) == 0
    assert "fixed" in repr(controller)


def test_retry_after_pauses_every_send_up_to_max_pause() -> None:
    controller = AIMDController(initial_limit=8, max_pause=30.0)
    tickets = [controller.on_send(0.0) for _ in range(3)]
    controller.on_overload(tickets[0], 1.0, retry_after=5.0)
    assert controller.paused_for(1.0) == pytest.approx(5.0)
    assert controller.send_delay(2.0) == pytest.approx(4.0)  # a free slot, yet paused
    controller.on_overload(tickets[1], 2.0, retry_after=86_400.0)  # a quota window: capped
    assert controller.send_delay(2.0) == pytest.approx(30.0)
    controller.on_overload(tickets[2], 3.0, retry_after=1.0)  # a shorter wait never shortens the pause
    assert controller.send_delay(3.0) == pytest.approx(29.0)
    assert controller.send_delay(32.0) == 0


def test_requests_per_minute_paces_sends() -> None:
    controller = AIMDController(initial_limit=100, max_requests_per_minute=120)  # 2 per second
    sent = []
    now = 0.0
    while now < 10.0:
        delay = controller.send_delay(now)
        assert delay is not None
        if delay == 0:
            sent.append(now)
            controller.on_success(controller.on_send(now), now)
        else:
            now += delay
    assert 20 <= len(sent) <= 22  # two a second, after a burst of at most two


def test_tokens_per_minute_charges_estimates_and_settles_with_usage() -> None:
    controller = AIMDController(initial_limit=100, max_tokens_per_minute=6000)  # 100 tokens a second
    first = controller.on_send(0.0, prompt_tokens=50, max_completion_tokens=250)
    assert first.tokens == 300
    delay = controller.send_delay(0.0)
    assert delay == pytest.approx(2.0)  # 100 - 300 = -200 tokens: two seconds of refill to get back to 0...
    # ...but the reply used only 60 tokens: the 240 overcharged come back
    controller.on_success(first, 0.5, prompt_tokens=50, completion_tokens=10)
    assert controller.send_delay(0.5) == 0
    # without max_tokens the estimate follows the completions seen (an average moving from 256 towards 10)
    assert controller.estimate_tokens(50) < 50 + 256
    rejected = controller.on_send(0.6, prompt_tokens=10_000)
    controller.on_overload(rejected, 0.7)  # a rejected request used no tokens: refunded
    assert controller.send_delay(0.7) == 0


def test_errors_free_the_slot_and_change_nothing_else() -> None:
    controller = AIMDController(initial_limit=2)
    first, second = fill(controller)
    controller.on_error(first, 1.0)
    assert controller.in_flight == 1
    assert controller.limit == 2
    assert controller.send_delay(1.0) == 0
    controller.on_error(second, 1.0)
    with pytest.raises(RuntimeError, match="did not record"):
        controller.on_error(second, 1.0)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"initial_limit": 0}, "initial_limit"),
        ({"max_limit": True}, "max_limit"),
        ({"min_limit": 5, "max_limit": 4}, "must not exceed"),
        ({"backoff": 1.0}, "backoff"),
        ({"probe_patience": 0.5}, "probe_patience"),
        ({"max_pause": -1}, "max_pause"),
        ({"max_requests_per_minute": 0}, "max_requests_per_minute"),
        ({"max_tokens_per_minute": math.inf}, "max_tokens_per_minute"),
    ],
)
def test_bad_settings_say_what_to_fix(settings: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        AIMDController(**settings)  # type: ignore[arg-type]


def simulate(controller: AIMDController, *, rows: int, capacity: int, service: float) -> tuple[float, float]:
    """A discrete-event endpoint serving ``capacity`` requests at once and answering 429 beyond.

    Returns (goodput as a fraction of capacity / service, share of requests answered 429)."""
    now = 0.0
    busy = 0
    events: list[tuple[float, int, bool, Ticket]] = []
    order = itertools.count()
    waiting = rows
    done = sent = rejected = 0
    while done < rows:
        while waiting and controller.send_delay(now) == 0:
            ticket = controller.on_send(now)
            waiting -= 1
            sent += 1
            accepted = busy < capacity
            busy += accepted
            heapq.heappush(events, (now + (service if accepted else 0.001), next(order), accepted, ticket))
        now, _, accepted, ticket = heapq.heappop(events)
        if accepted:
            busy -= 1
            done += 1
            controller.on_success(ticket, now)
        else:
            rejected += 1
            waiting += 1
            controller.on_overload(ticket, now)
    return rows / now / (capacity / service), rejected / sent


def test_adaptive_mode_finds_a_fixed_capacity_from_a_limit_of_two() -> None:
    goodput, rejected = simulate(AIMDController(), rows=3000, capacity=8, service=0.05)
    assert goodput >= 0.9
    assert rejected < 0.05
    goodput, rejected = simulate(AIMDController(initial_limit=2, adaptive=False), rows=300, capacity=8, service=0.05)
    assert goodput == pytest.approx(0.25, rel=0.01)
    assert rejected == 0
