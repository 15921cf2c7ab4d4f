"""Rate limits and injected faults: the parts of the API that make clients robust.

Both are measured with the store's clock and drawn with the store's random generator,
so tests set a `ManualClock` and a seeded `random.Random` and never sleep.
"""

# Not `from __future__ import annotations`: typing.NamedTuple would compile each field's
# annotation text at every start.

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from reconciler.emulator.errors import RateLimited

Clock = Callable[[], float]

HOUR = 3600.0


# A NamedTuple, not a frozen dataclass: about 0.05 ms to define at start-up, not 0.4.
class RateLimits(NamedTuple):
    """The documented limits; `None` turns one off."""

    per_second: int | None = 4
    creates_per_hour: int | None = 60
    updates_per_hour: int | None = 60
    # Whether a 429 carries `Retry-After` (unconfirmed on the real API: clients must cope).
    retry_after: bool = True
    # Whether a 429 carries `X-RateLimit-Limit`, `-Remaining` (0) and `-Reset` (seconds to
    # wait), as many APIs do (unconfirmed on imgix's: off unless asked for).
    rate_limit_headers: bool = False


class Faults(NamedTuple):
    """Failures to inject, as probabilities per request (and seconds of added latency)."""

    error_rate: float = 0.0
    lost_response_rate: float = 0.0
    latency: float = 0.0

    def draw_error(self, rng: random.Random) -> bool:
        """Whether this request fails with a 500 before anything happens."""
        return self.error_rate > 0 and rng.random() < self.error_rate

    def draw_lost_response(self, rng: random.Random) -> bool:
        """Whether this write commits but its response never reaches the client."""
        return self.lost_response_rate > 0 and rng.random() < self.lost_response_rate


@dataclass
class ManualClock:
    """A clock that moves only when told: inject it instead of `time.time` in tests."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class SlidingWindow:
    """Events within the last `span` seconds, to refuse the one past `limit`."""

    # A plain class: a dataclass costs about 0.25 ms more to define, at every start.
    __slots__ = ("span", "times")

    def __init__(self, span: float) -> None:
        self.span = span
        self.times: deque[float] = deque()

    def wait_needed(self, limit: int | None, now: float) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        while self.times and self.times[0] <= now - self.span:
            self.times.popleft()
        if limit is None or len(self.times) < limit:
            return 0.0
        return self.times[-limit] + self.span - now

    def record(self, now: float) -> None:
        self.times.append(now)


class RateLimiter:
    """The three documented windows: all requests, creates and updates."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.requests = SlidingWindow(1.0)
        self.creates = SlidingWindow(HOUR)
        self.updates = SlidingWindow(HOUR)

    def admit_request(self, limits: RateLimits) -> None:
        """Count one request, or raise `RateLimited` past the per-second limit."""
        now = self._clock()
        self._check(self.requests, limits.per_second, now, "requests per second")
        self.requests.record(now)

    def check_create(self, limits: RateLimits) -> None:
        self._check(self.creates, limits.creates_per_hour, self._clock(), "source creates per hour")

    def check_update(self, limits: RateLimits) -> None:
        self._check(self.updates, limits.updates_per_hour, self._clock(), "source updates per hour")

    def record_create(self) -> None:
        self.creates.record(self._clock())

    def record_update(self) -> None:
        self.updates.record(self._clock())

    @staticmethod
    def _check(window: SlidingWindow, limit: int | None, now: float, what: str) -> None:
        wait = window.wait_needed(limit, now)
        if wait > 0:
            raise RateLimited(
                f"Rate limit exceeded: at most {limit} {what}. Try again later.",
                retry_after=max(1, math.ceil(wait)),
                limit=limit or 0,
            )
