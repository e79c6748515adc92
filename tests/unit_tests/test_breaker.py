from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from graph.breaker import BreakerBoard, CircuitBreaker


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(clock: FakeClock | None = None, **kwargs: Any) -> CircuitBreaker:
    clock = clock or FakeClock()
    return CircuitBreaker(
        "https://api.example", "gpt-x", clock=clock, wall_clock=lambda: 1.7e9, **kwargs
    )


def open_breaker(breaker: CircuitBreaker) -> None:
    breaker.record_failure("boom", immediate=True)
    assert breaker.state == "open"


def test_starts_closed_and_allows() -> None:
    breaker = make()
    assert breaker.state == "closed"
    assert breaker.key == "https://api.example|gpt-x"
    assert all(breaker.allow() for _ in range(5))


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = make(failure_threshold=3)
    breaker.record_failure("Timeout")
    breaker.record_failure("Timeout")
    assert breaker.state == "closed"
    assert breaker.allow()
    breaker.record_failure("Timeout")
    assert breaker.state == "open"
    assert breaker.snapshot()["opened_count"] == 1
    assert not breaker.allow()


def test_success_resets_consecutive_failures() -> None:
    breaker = make(failure_threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    assert breaker.snapshot()["consecutive_failures"] == 0
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


def test_immediate_failure_opens_at_once() -> None:
    breaker = make(failure_threshold=5)
    breaker.record_failure("AuthenticationError", immediate=True)
    assert breaker.state == "open"
    assert breaker.snapshot()["last_failure"] == "AuthenticationError"


def test_open_refuses_until_cooldown_elapsed() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0)
    open_breaker(breaker)
    assert not breaker.allow()
    clock.advance(29.9)
    assert not breaker.allow()
    assert breaker.snapshot()["retry_in_s"] == pytest.approx(0.1)
    assert breaker.state == "open"
    clock.advance(0.1)
    assert breaker.allow()
    assert breaker.state == "half_open"


def test_exactly_one_trial_in_half_open() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0, trial_timeout_s=60.0)
    open_breaker(breaker)
    clock.advance(30.0)
    results = [breaker.allow() for _ in range(10)]
    assert results == [True] + [False] * 9
    clock.advance(59.0)  # the trial is still in flight
    assert not breaker.allow()
    assert breaker.state == "half_open"


def test_trial_success_closes() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_threshold=2, cooldown_s=30.0)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    snap = breaker.snapshot()
    assert snap["consecutive_failures"] == 0
    assert snap["retry_in_s"] == 0.0
    assert all(breaker.allow() for _ in range(3))
    breaker.record_failure()
    assert breaker.state == "closed"  # the count started again from zero


def test_trial_failure_reopens_with_doubled_cooldown() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0, max_cooldown_s=600.0)
    open_breaker(breaker)
    assert breaker.cooldown_s == 30.0
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_failure("Timeout")
    assert breaker.state == "open"
    assert breaker.cooldown_s == 60.0
    assert breaker.snapshot()["opened_count"] == 2
    clock.advance(59.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()


def test_doubling_caps_at_max() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0, max_cooldown_s=200.0)
    open_breaker(breaker)
    seen = [breaker.cooldown_s]
    for _ in range(5):
        clock.advance(breaker.cooldown_s)
        assert breaker.allow()
        breaker.record_failure()
        seen.append(breaker.cooldown_s)
    assert seen == [30.0, 60.0, 120.0, 200.0, 200.0, 200.0]


def test_flapping_endpoint_doubles_cooldown() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0, max_cooldown_s=600.0)
    open_breaker(breaker)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_success()
    clock.advance(5.0)
    breaker.record_failure(immediate=True)
    assert breaker.cooldown_s == 60.0


def test_flapping_at_the_cap_stays_at_the_cap() -> None:
    # With the cooldown at the cap, a re-opening always comes more than `max_cooldown_s` after the
    # previous opening; the healthy period is what decides, so the cooldown must not fall back.
    clock = FakeClock()
    breaker = make(clock, cooldown_s=100.0, max_cooldown_s=200.0)
    open_breaker(breaker)
    clock.advance(100.0)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.cooldown_s == 200.0
    clock.advance(200.0)
    assert breaker.allow()
    breaker.record_success()
    clock.advance(5.0)
    breaker.record_failure(immediate=True)
    assert breaker.cooldown_s == 200.0


def test_base_cooldown_after_long_healthy_period() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0, max_cooldown_s=600.0)
    open_breaker(breaker)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.cooldown_s == 60.0
    clock.advance(60.0)
    assert breaker.allow()
    breaker.record_success()
    clock.advance(600.0)
    breaker.record_failure(immediate=True)
    assert breaker.cooldown_s == 30.0


def test_expired_trial_lease_allows_a_new_trial() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0, trial_timeout_s=60.0)
    open_breaker(breaker)
    clock.advance(30.0)
    assert breaker.allow()  # this trial's task is cancelled and never reports
    clock.advance(59.9)
    assert not breaker.allow()
    assert breaker.snapshot()["retry_in_s"] == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.allow()
    assert not breaker.allow()
    assert breaker.state == "half_open"
    breaker.record_success()
    assert breaker.state == "closed"


def test_late_failure_while_open_does_not_extend() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0)
    open_breaker(breaker)
    transitions = len(breaker.transitions)
    clock.advance(20.0)
    breaker.record_failure("LateTimeout")
    breaker.record_failure("LateTimeout", immediate=True)
    snap = breaker.snapshot()
    assert snap["state"] == "open"
    assert snap["opened_count"] == 1
    assert snap["cooldown_s"] == 30.0
    assert snap["retry_in_s"] == pytest.approx(10.0)
    assert snap["total_failures"] == 3
    assert snap["last_failure"] == "LateTimeout"
    assert len(breaker.transitions) == transitions
    clock.advance(10.0)
    assert breaker.allow()


def test_late_success_while_open_counts_only() -> None:
    clock = FakeClock()
    breaker = make(clock)
    open_breaker(breaker)
    breaker.record_success()
    snap = breaker.snapshot()
    assert snap["state"] == "open"
    assert snap["total_successes"] == 1
    assert not breaker.allow()


def test_snapshot_fields_and_json() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_threshold=2, cooldown_s=30.0)
    breaker.record_success()
    breaker.record_failure("RateLimitError")
    snap = breaker.snapshot()
    assert snap == {
        "key": "https://api.example|gpt-x",
        "endpoint": "https://api.example",
        "model": "gpt-x",
        "state": "closed",
        "consecutive_failures": 1,
        "failure_threshold": 2,
        "cooldown_s": 30.0,
        "retry_in_s": 0.0,
        "opened_count": 0,
        "total_failures": 1,
        "total_successes": 1,
        "last_failure": "RateLimitError",
        "changed_at": 1.7e9,
    }
    breaker.record_failure("RateLimitError")
    assert json.loads(json.dumps(breaker.snapshot()))["state"] == "open"


def test_snapshot_reports_open_until_a_caller_takes_the_trial() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0)
    open_breaker(breaker)
    clock.advance(45.0)
    snap = breaker.snapshot()
    assert (snap["state"], snap["retry_in_s"]) == ("open", 0.0)
    assert breaker.allow()
    assert breaker.snapshot()["state"] == "half_open"


def test_long_reason_is_truncated() -> None:
    breaker = make()
    breaker.record_failure("x" * 1000)
    assert len(breaker.snapshot()["last_failure"]) == 200


def test_listener_sees_transitions_outside_the_lock() -> None:
    clock = FakeClock()
    calls: list[tuple[str, str, bool, str | None]] = []

    def listener(breaker: CircuitBreaker, old: str, new: str) -> None:
        held = breaker._lock.locked()
        # Only read the breaker when it is safe to: a regression must fail, not hang.
        state = None if held else breaker.snapshot()["state"]
        calls.append((old, new, held, state))

    breaker = make(clock, cooldown_s=30.0, on_transition=listener)
    open_breaker(breaker)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_failure()
    clock.advance(60.0)
    assert breaker.allow()
    breaker.record_success()
    assert calls == [
        ("closed", "open", False, "open"),
        ("open", "half_open", False, "half_open"),
        ("half_open", "open", False, "open"),
        ("open", "half_open", False, "half_open"),
        ("half_open", "closed", False, "closed"),
    ]
    assert [(old, new) for _, old, new in breaker.transitions] == [c[:2] for c in calls]


def test_failing_listener_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def listener(breaker: CircuitBreaker, old: str, new: str) -> None:
        raise RuntimeError("listener bug")

    breaker = make(on_transition=listener)
    with caplog.at_level(logging.ERROR, logger="graph.breaker"):
        breaker.record_failure(immediate=True)
    assert breaker.state == "open"
    assert "listener failed" in caplog.text


def test_transition_history_keeps_the_last_50() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=1.0, max_cooldown_s=1.0)
    for _ in range(40):
        breaker.record_failure(immediate=True)
        clock.advance(1.0)
        assert breaker.allow()
        breaker.record_success()
    assert len(breaker.transitions) == 50
    assert breaker.transitions[-1][1:] == ("half_open", "closed")
    assert breaker.snapshot()["opened_count"] == 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": 1.5}, "failure_threshold"),
        ({"cooldown_s": 0.0}, "cooldown_s"),
        ({"cooldown_s": -1.0}, "cooldown_s"),
        ({"cooldown_s": float("nan")}, "cooldown_s"),
        ({"cooldown_s": 60.0, "max_cooldown_s": 30.0}, "max_cooldown_s"),
        ({"trial_timeout_s": 0.0}, "trial_timeout_s"),
    ],
)
def test_invalid_settings_raise(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker("e", "m", **kwargs)
    with pytest.raises(ValueError, match=message):
        BreakerBoard(**kwargs)


def test_board_creates_one_breaker_per_endpoint_and_model() -> None:
    clock = FakeClock()
    seen: list[tuple[str, str, str]] = []
    board = BreakerBoard(
        failure_threshold=1,
        cooldown_s=10.0,
        clock=clock,
        on_transition=lambda b, old, new: seen.append((b.key, old, new)),
    )
    a = board.get("https://b.example", "m1")
    assert board.get("https://b.example", "m1") is a
    b = board.get("https://a.example", "m1")
    c = board.get("https://b.example", "m2")
    assert len({id(a), id(b), id(c)}) == 3
    a.record_failure("Timeout")
    assert a.state == "open" and b.state == "closed"
    assert a.snapshot()["cooldown_s"] == 10.0
    assert seen == [("https://b.example|m1", "closed", "open")]
    snaps = board.snapshot()
    assert [s["key"] for s in snaps] == [
        "https://a.example|m1",
        "https://b.example|m1",
        "https://b.example|m2",
    ]
    json.dumps(snaps)


def test_board_creation_is_thread_safe() -> None:
    board = BreakerBoard()
    barrier = threading.Barrier(20)

    def get() -> CircuitBreaker:
        barrier.wait()
        return board.get("e", "m")

    with ThreadPoolExecutor(max_workers=20) as pool:
        breakers = list(pool.map(lambda _: get(), range(20)))
    assert len({id(b) for b in breakers}) == 1
    assert len(board.snapshot()) == 1


@pytest.mark.parametrize("lease_expired", [False, True])
def test_threads_get_exactly_one_trial(lease_expired: bool) -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0, trial_timeout_s=60.0)
    open_breaker(breaker)
    clock.advance(30.0)
    if lease_expired:
        assert breaker.allow()
        clock.advance(60.0)
    barrier = threading.Barrier(50)

    def allow() -> bool:
        barrier.wait()
        return breaker.allow()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda _: allow(), range(50)))
    assert results.count(True) == 1
    assert breaker.state == "half_open"


@pytest.mark.anyio
async def test_concurrent_tasks_leave_a_consistent_state() -> None:
    clock = FakeClock()
    rng = random.Random(1234)
    seen: list[tuple[str, str]] = []
    breaker = make(
        clock,
        failure_threshold=3,
        cooldown_s=1.0,
        max_cooldown_s=8.0,
        trial_timeout_s=2.0,
        on_transition=lambda b, old, new: seen.append((old, new)),
    )
    failures = successes = 0

    async def worker(index: int) -> None:
        nonlocal failures, successes
        for _ in range(20):
            allowed = breaker.allow()
            await asyncio.sleep(0)
            if allowed or rng.random() < 0.2:  # some reports are late, from before an opening
                if rng.random() < 0.5:
                    breaker.record_failure("Timeout", immediate=rng.random() < 0.05)
                    failures += 1
                else:
                    breaker.record_success()
                    successes += 1
            snap = breaker.snapshot()
            if snap["state"] == "closed":
                assert snap["consecutive_failures"] < snap["failure_threshold"]
            assert 1.0 <= snap["cooldown_s"] <= 8.0
            if index % 10 == 0:
                clock.advance(0.25)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(i) for i in range(100)))

    snap = breaker.snapshot()
    assert snap["total_failures"] == failures
    assert snap["total_successes"] == successes
    assert snap["opened_count"] == sum(1 for _, new in seen if new == "open") > 0
    assert any(new == "closed" for _, new in seen)
    # The transitions form one chain starting from closed, and each is a legal move.
    legal = {
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("half_open", "closed"),
    }
    assert all(t in legal for t in seen)
    assert [old for old, _ in seen] == ["closed"] + [new for _, new in seen[:-1]]
    assert seen[-1][1] == snap["state"]
    if snap["state"] == "closed":
        assert snap["consecutive_failures"] < snap["failure_threshold"]
    json.dumps(snap)


# --- available(): a look-ahead that never takes the trial ----------------------------------------


def test_available_when_closed() -> None:
    breaker = make()
    assert breaker.available() is True
    breaker.record_failure("Timeout")
    assert breaker.available() is True  # below the threshold
    assert breaker.state == "closed"


def test_available_false_while_cooling_down() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0)
    open_breaker(breaker)
    assert breaker.available() is False
    clock.advance(29.9)
    assert breaker.available() is False
    assert breaker.state == "open"


def test_available_never_grants_the_trial() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0, trial_timeout_s=60.0)
    open_breaker(breaker)
    clock.advance(30.0)
    assert breaker.available() is True
    assert breaker.available() is True
    assert breaker.state == "open"  # looking did not move it
    assert breaker.transitions[-1][1:] == ("closed", "open")
    assert breaker.allow() is True  # the one trial
    assert breaker.state == "half_open"
    assert breaker.available() is False  # while the trial runs
    assert breaker.allow() is False
    clock.advance(59.9)
    assert breaker.available() is False


def test_available_after_the_trial_lease_expires_without_taking_it() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0, trial_timeout_s=60.0)
    open_breaker(breaker)
    clock.advance(30.0)
    assert breaker.allow() is True
    clock.advance(60.0)
    assert breaker.available() is True
    assert breaker.available() is True
    assert breaker.allow() is True  # the new trial
    assert breaker.available() is False
    assert breaker.allow() is False


def test_available_follows_the_trial_outcome() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown_s=30.0)
    open_breaker(breaker)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_failure("Timeout")  # reopens with the cooldown doubled
    assert breaker.state == "open" and breaker.cooldown_s == 60.0
    clock.advance(30.0)
    assert breaker.available() is False
    clock.advance(30.0)
    assert breaker.available() is True
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.available() is True


def test_available_does_not_notify_or_count() -> None:
    clock = FakeClock()
    seen: list[tuple[str, str]] = []
    breaker = make(clock, on_transition=lambda b, old, new: seen.append((old, new)))
    open_breaker(breaker)
    clock.advance(1000.0)
    before = breaker.snapshot()
    for _ in range(5):
        assert breaker.available()
    assert seen == [("closed", "open")]
    after = breaker.snapshot()
    assert after["state"] == "open" and after["opened_count"] == before["opened_count"]
    assert after["total_failures"] == before["total_failures"]


def test_a_late_failure_cannot_reopen_a_half_open_breaker_whose_trial_succeeds() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_threshold=2, cooldown_s=10)
    early = [breaker.permit() for _ in range(3)]  # three calls in flight while closed
    breaker.record_failure("timeout", ticket=early[0])
    breaker.record_failure("timeout", ticket=early[1])
    assert breaker.state == "open"
    clock.advance(10.5)
    trial = breaker.permit()
    assert trial is not None and trial > 0 and breaker.state == "half_open"
    breaker.record_failure("timeout", ticket=early[2])  # the third call reports late
    assert breaker.state == "half_open" and breaker.cooldown_s == 10
    breaker.record_success(ticket=trial)
    assert breaker.state == "closed" and breaker.allow()


def test_a_late_success_cannot_close_a_half_open_breaker() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1, cooldown_s=10)
    late = breaker.permit()
    breaker.record_failure("timeout", ticket=breaker.permit())
    clock.advance(11)
    trial = breaker.permit()
    breaker.record_success(ticket=late)
    assert breaker.state == "half_open" and not breaker.allow()
    breaker.record_failure("timeout", ticket=trial)
    assert breaker.state == "open" and breaker.cooldown_s == 20


def test_an_expired_trial_lease_hands_out_a_new_ticket() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1, cooldown_s=10, trial_timeout_s=5)
    breaker.record_failure("x")
    clock.advance(10)
    first = breaker.permit()
    clock.advance(5)
    second = breaker.permit()
    assert first is not None and second is not None and second != first
    breaker.record_success(ticket=first)  # the lost trial's report no longer decides
    assert breaker.state == "half_open"
    breaker.record_success(ticket=second)
    assert breaker.state == "closed"


def test_board_listeners_held_weakly_go_away_with_their_owner() -> None:
    import gc
    import weakref

    events: list[tuple[str, str]] = []

    class Owner:
        def hear(self, breaker: CircuitBreaker, old: str, new: str) -> None:
            events.append((old, new))

    board = BreakerBoard(failure_threshold=1)
    owner = Owner()
    board.add_listener(weakref.WeakMethod(owner.hear))
    breaker = board.get("e", "m")
    breaker.record_failure("x")
    assert events == [("closed", "open")]
    del owner
    gc.collect()
    board.get("e", "other").record_failure("x")  # the next transition prunes the dead listener
    assert events == [("closed", "open")] and len(board._listeners) == 0


def test_one_failing_board_listener_does_not_silence_the_others() -> None:
    heard: list[str] = []

    def broken(breaker: CircuitBreaker, old: str, new: str) -> None:
        raise RuntimeError("boom")

    board = BreakerBoard(failure_threshold=1)
    board.add_listener(broken)
    board.add_listener(lambda b, old, new: heard.append(new))
    board.get("e", "m").record_failure("x")
    assert heard == ["open"]
