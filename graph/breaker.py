"""Circuit breakers per LLM endpoint and model, shared by all runs of one runtime."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

logger = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]
"""A breaker's state: `closed` lets calls through, `open` refuses them, `half_open` allows one trial."""

TransitionListener = Callable[["CircuitBreaker", str, str], None]
"""Called as `listener(breaker, old_state, new_state)` after each transition, outside the lock."""

_HISTORY = 50
_MAX_REASON = 200


def _validate(
    failure_threshold: int, cooldown_s: float, max_cooldown_s: float, trial_timeout_s: float
) -> None:
    if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int):
        raise ValueError(f"failure_threshold must be an int, got {failure_threshold!r}")
    if failure_threshold < 1:
        raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
    # `not x > 0` rather than `x <= 0` so that NaN is refused too.
    if not cooldown_s > 0:
        raise ValueError(f"cooldown_s must be > 0, got {cooldown_s}")
    if not max_cooldown_s >= cooldown_s:
        raise ValueError(
            f"max_cooldown_s must be >= cooldown_s, got max_cooldown_s={max_cooldown_s}"
            f" and cooldown_s={cooldown_s}"
        )
    if not trial_timeout_s > 0:
        raise ValueError(f"trial_timeout_s must be > 0, got {trial_timeout_s}")


class CircuitBreaker:
    """Refuse calls to an LLM endpoint+model that keeps failing, then probe it with one trial.

    `closed` opens after `failure_threshold` consecutive failures, or at once on
    `record_failure(immediate=True)`. Once the cooldown has elapsed, the first `allow()` moves the
    breaker to `half_open` and is the one trial; its success closes the breaker, its failure
    reopens it with the cooldown doubled. A trial that never reports loses its lease after
    `trial_timeout_s`, and the next caller becomes the new trial.

    The cooldown starts at `cooldown_s` and doubles (up to `max_cooldown_s`) each time the breaker
    opens again without a healthy period of `max_cooldown_s` seconds in between: a failed trial,
    or an endpoint that closes and soon re-opens. An opening after a long healthy period starts
    again at `cooldown_s`.

    Reports that arrive while the breaker is open come from calls that started before it opened:
    they are counted in the totals (and a failure's reason kept in `last_failure`) but change no
    state, so a late failure neither extends nor re-opens the cooldown.

    State is read as stored: an open breaker whose cooldown has elapsed still reports `open`
    (with `retry_in_s` 0.0) until a caller takes the trial.

    Every method is thread-safe and never blocks on I/O or sleeps: the lock is held only for a
    state transition, so calling from a coroutine does not stall the event loop.

    Args:
        endpoint: The LLM endpoint (base URL or provider name).
        model: The model name.
        failure_threshold: Consecutive failures that open a closed breaker.
        cooldown_s: Base cooldown, in seconds, before an open breaker allows a trial.
        max_cooldown_s: Cap on the doubled cooldown; also the healthy period that resets it.
        trial_timeout_s: Seconds after which an unreported trial's lease expires.
        clock: Monotonic time source for all timing.
        wall_clock: Wall time source for `changed_at` and `transitions`.
        on_transition: Listener called after each state change.

    Raises:
        ValueError: If a setting is out of range.
    """

    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        max_cooldown_s: float = 600.0,
        trial_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        on_transition: TransitionListener | None = None,
    ) -> None:
        _validate(failure_threshold, cooldown_s, max_cooldown_s, trial_timeout_s)
        self.endpoint = endpoint
        """The LLM endpoint this breaker guards."""
        self.model = model
        """The model this breaker guards."""
        self.key = f"{endpoint}|{model}"
        """`endpoint|model`, unique within a `BreakerBoard`."""
        self.failure_threshold = failure_threshold
        """Consecutive failures that open a closed breaker."""
        self.base_cooldown_s = cooldown_s
        """The cooldown of a first opening, or of one after a long healthy period."""
        self.max_cooldown_s = max_cooldown_s
        """Cap on the doubled cooldown, and the healthy period that resets it."""
        self.trial_timeout_s = trial_timeout_s
        """Seconds after which an unreported trial's lease expires."""
        self.on_transition = on_transition
        """Listener called as `(breaker, old_state, new_state)` after each transition."""
        self.transitions: deque[tuple[float, State, State]] = deque(maxlen=_HISTORY)
        """The last 50 transitions as `(wall time, old state, new state)`, oldest first.

        Appended under the lock: take a copy (`list(...)`) before iterating while others report.
        """

        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._consecutive_failures = 0
        self._cooldown_s = cooldown_s
        self._opened_at = 0.0
        self._closed_at: float | None = None
        self._trial_started_at = 0.0
        self._trial_ticket = 0
        self._opened_count = 0
        self._total_failures = 0
        self._total_successes = 0
        self._last_failure: str | None = None
        self._changed_at = wall_clock()

    @property
    def state(self) -> State:
        """Return the current state, as stored (see the class docstring)."""
        with self._lock:
            return self._state

    @property
    def cooldown_s(self) -> float:
        """Return the current cooldown in seconds (the base one until the breaker has doubled it)."""
        with self._lock:
            return self._cooldown_s

    def allow(self) -> bool:
        """Return whether a call may go to the endpoint now.

        Always True when closed. When open, False until the cooldown has elapsed; then the
        breaker turns half_open and this caller gets True as the single trial. When half_open,
        False while the trial's lease runs, True for the one caller that takes an expired lease.
        """
        return self.permit() is not None

    def permit(self) -> int | None:
        """Return a ticket for one call if it may go now, else None (see `allow`).

        The ticket is 0 for a call let through a closed breaker and a fresh positive number for
        a half-open trial. Passing it back to `record_success`/`record_failure` lets only the
        trial's own report decide the trial: a late report from a call that started before
        the breaker opened is counted but cannot close or re-open it.
        """
        change: tuple[State, State] | None = None
        with self._lock:
            if self._state == "closed":
                return 0
            now = self._clock()
            if self._state == "open":
                if now < self._opened_at + self._cooldown_s:
                    return None
                change = self._transition("half_open")
            elif now - self._trial_started_at < self.trial_timeout_s:
                return None
            # A new trial; after an expired lease, its caller was cancelled or lost its result.
            self._trial_started_at = now
            self._trial_ticket += 1
            ticket = self._trial_ticket
        self._notify(change)
        return ticket

    def available(self) -> bool:
        """Return whether `allow()` would let a call through now, without taking the trial.

        For routing decisions that only look ahead (which tier to escalate to); the call
        itself still asks `allow()`, which is the only thing that grants a half-open trial.
        """
        with self._lock:
            if self._state == "closed":
                return True
            now = self._clock()
            if self._state == "open":
                return now >= self._opened_at + self._cooldown_s
            return now - self._trial_started_at >= self.trial_timeout_s

    def record_success(self, ticket: int | None = None) -> None:
        """Report a call that succeeded: reset the failure count, and close a half-open breaker.

        Args:
            ticket: The call's `permit()`; when given, only the current trial's closes the
                breaker. Without it any success while half-open counts as the trial's.
        """
        change: tuple[State, State] | None = None
        with self._lock:
            self._total_successes += 1
            if self._state == "closed":
                self._consecutive_failures = 0
            elif self._state == "half_open" and self._decides_trial(ticket):
                self._consecutive_failures = 0
                self._closed_at = self._clock()
                change = self._transition("closed")
        self._notify(change)

    def record_failure(
        self, reason: str = "", *, immediate: bool = False, ticket: int | None = None
    ) -> None:
        """Report a call that failed.

        Args:
            reason: A short description kept in `last_failure`, such as the error type.
            immediate: Open a closed breaker at once, whatever the failure count; for failures
                that retrying cannot fix, such as bad credentials or an unknown model.
            ticket: The call's `permit()`; when given, only the current trial's reopens a
                half-open breaker.
        """
        change: tuple[State, State] | None = None
        with self._lock:
            self._total_failures += 1
            self._last_failure = reason[:_MAX_REASON]
            if self._state == "closed":
                self._consecutive_failures += 1
                if immediate or self._consecutive_failures >= self.failure_threshold:
                    change = self._open()
            elif self._state == "half_open" and self._decides_trial(ticket):
                change = self._open()
        self._notify(change)

    def _decides_trial(self, ticket: int | None) -> bool:
        """Return whether a report with `ticket` is the current trial's; call under the lock."""
        return ticket is None or ticket == self._trial_ticket

    def snapshot(self) -> dict[str, Any]:
        """Return the breaker's state and counters as a JSON-serializable dict.

        `retry_in_s` is the time until a trial is allowed: 0.0 when closed, the rest of the
        cooldown when open (0.0 once it has elapsed, until a caller takes the trial), and the rest
        of the trial's lease when half_open. `changed_at` is the creation time until the first
        transition, and `last_failure` is None until the first failure.
        """
        with self._lock:
            now = self._clock()
            if self._state == "open":
                retry_in_s = max(0.0, self._opened_at + self._cooldown_s - now)
            elif self._state == "half_open":
                retry_in_s = max(0.0, self._trial_started_at + self.trial_timeout_s - now)
            else:
                retry_in_s = 0.0
            return {
                "key": self.key,
                "endpoint": self.endpoint,
                "model": self.model,
                "state": self._state,
                "consecutive_failures": self._consecutive_failures,
                "failure_threshold": self.failure_threshold,
                "cooldown_s": self._cooldown_s,
                "retry_in_s": retry_in_s,
                "opened_count": self._opened_count,
                "total_failures": self._total_failures,
                "total_successes": self._total_successes,
                "last_failure": self._last_failure,
                "changed_at": self._changed_at,
            }

    def _open(self) -> tuple[State, State]:
        """Open the breaker, doubling the cooldown if it opened again soon; call under the lock."""
        now = self._clock()
        # A failed trial never closed, so it doubles. A closed breaker earns the base cooldown back
        # only after a healthy period of `max_cooldown_s`; measuring that from the closing (not the
        # previous opening) keeps a flapping endpoint at the cap instead of resetting it to base.
        if self._state == "half_open" or (
            self._closed_at is not None and now - self._closed_at < self.max_cooldown_s
        ):
            self._cooldown_s = min(self._cooldown_s * 2, self.max_cooldown_s)
        else:
            self._cooldown_s = self.base_cooldown_s
        self._opened_at = now
        self._opened_count += 1
        return self._transition("open")

    def _transition(self, new: State) -> tuple[State, State]:
        """Move to `new` and record it; call under the lock, then `_notify` outside it."""
        old = self._state
        self._state = new
        self._changed_at = self._wall_clock()
        self.transitions.append((self._changed_at, old, new))
        return old, new

    def _notify(self, change: tuple[State, State] | None) -> None:
        """Call the listener outside the lock, so that it may use the breaker."""
        if change is None or self.on_transition is None:
            return
        try:
            self.on_transition(self, *change)
        except Exception:
            # A broken listener must not turn a breaker report into a failed LLM call.
            logger.exception("circuit breaker listener failed for %s", self.key)


class BreakerBoard:
    """All breakers of one runtime, created on first use per endpoint+model, with shared settings.

    Args:
        failure_threshold: Consecutive failures that open a closed breaker.
        cooldown_s: Base cooldown, in seconds, before an open breaker allows a trial.
        max_cooldown_s: Cap on the doubled cooldown; also the healthy period that resets it.
        trial_timeout_s: Seconds after which an unreported trial's lease expires.
        clock: Monotonic time source for all timing.
        wall_clock: Wall time source for `changed_at` and `transitions`.
        on_transition: Listener called after each state change of any breaker.

    Raises:
        ValueError: If a setting is out of range.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        max_cooldown_s: float = 600.0,
        trial_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        on_transition: TransitionListener | None = None,
    ) -> None:
        _validate(failure_threshold, cooldown_s, max_cooldown_s, trial_timeout_s)
        self._failure_threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self._trial_timeout_s = trial_timeout_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._listeners: list[TransitionListener | weakref.WeakMethod[TransitionListener]] = (
            [on_transition] if on_transition else []
        )
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def add_listener(
        self, listener: TransitionListener | weakref.WeakMethod[TransitionListener]
    ) -> None:
        """Call `listener` after every state change of any breaker, present or future.

        A `weakref.WeakMethod` is dropped once its object is gone, so a board shared by many
        runtimes does not keep them alive.
        """
        with self._lock:
            self._listeners.append(listener)

    def _dispatch(self, breaker: CircuitBreaker, old: str, new: str) -> None:
        with self._lock:
            self._listeners = [
                entry
                for entry in self._listeners
                if not isinstance(entry, weakref.WeakMethod) or entry() is not None
            ]
            listeners = list(self._listeners)
        for entry in listeners:
            listener = entry() if isinstance(entry, weakref.WeakMethod) else entry
            if listener is None:
                continue
            try:
                listener(breaker, old, new)
            except Exception:
                # One broken listener must not keep the others from hearing of the change.
                logger.exception("circuit breaker listener failed for %s", breaker.key)

    def get(self, endpoint: str, model: str) -> CircuitBreaker:
        """Return the breaker for `endpoint` and `model`, creating it on first use."""
        key = f"{endpoint}|{model}"
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = CircuitBreaker(
                    endpoint,
                    model,
                    failure_threshold=self._failure_threshold,
                    cooldown_s=self._cooldown_s,
                    max_cooldown_s=self._max_cooldown_s,
                    trial_timeout_s=self._trial_timeout_s,
                    clock=self._clock,
                    wall_clock=self._wall_clock,
                    on_transition=self._dispatch,
                )
                self._breakers[key] = breaker
            return breaker

    def snapshot(self) -> list[dict[str, Any]]:
        """Return every breaker's snapshot, sorted by key."""
        with self._lock:
            breakers = sorted(self._breakers.values(), key=lambda b: b.key)
        return [breaker.snapshot() for breaker in breakers]
