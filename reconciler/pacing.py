"""How fast and how often the client talks to the API: rate pacing and the retry policy.

imgix documents 4 requests per second per account, 60 source creations and 60 source
updates per hour. The client paces itself to those limits instead of learning them from
429s, and retries what the API lets it retry with exponential backoff and full jitter.
Time comes from an injected `clock` and `sleep`, so tests drive both with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Literal

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RequestKind = Literal["read", "create", "update"]

HOUR = 3600.0

logger = logging.getLogger("reconciler.client")


@dataclass(frozen=True)
class Pacing:
    """Client-side rate limits; `None` disables one. Defaults are imgix's documented limits.

    `headroom` lengthens every window a little, for the client's and the server's clocks
    not running at quite the same rate.
    """

    per_second: float | None = 4.0
    creates_per_hour: int | None = 60
    updates_per_hour: int | None = 60
    headroom: float = 0.01

    def __post_init__(self) -> None:
        for name in ("per_second", "creates_per_hour", "updates_per_hour"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"Pacing.{name} must be positive or None (got {value})")
        if self.headroom < 0:
            raise ValueError(f"Pacing.headroom must not be negative (got {self.headroom})")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of 429, 5xx and lost connections: up to `attempts` tries within `deadline` s."""

    attempts: int = 8
    base: float = 0.5
    cap: float = 30.0
    deadline: float = 120.0
    jitter: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1 (got {self.attempts})")
        if self.base < 0 or self.cap < 0 or self.deadline < 0:
            raise ValueError("RetryPolicy.base, cap and deadline must not be negative")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): full jitter."""
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        return self.jitter.uniform(0.0, ceiling)


def retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), if any."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    reference = now or datetime.now(timezone.utc)
    return max(0.0, (when - reference).total_seconds())


class _Window:
    """At most `limit` requests in flight or finished within the last `period` seconds.

    The server counts a request when it arrives, some time between our send and its
    answer; counting from the answer (and counting a request in flight as current) keeps
    the client under the limit whatever the latency, where counting from the send would
    meet a 429 whenever one request is slower to arrive than the next. A sliding window
    is also the strictest reading of a rate, so fixed-window and token-bucket servers
    are satisfied alike.
    """

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.in_flight = 0
        self._finished: deque[float] = deque()

    @classmethod
    def per_second(cls, rate: float, headroom: float) -> _Window:
        # 4/s is 4 per 1 s; a fractional rate such as 0.5/s becomes 1 per 2 s.
        limit = max(1, int(rate))
        return cls(limit, limit / rate + headroom)

    def wait(self, now: float) -> float:
        """Seconds until one more request fits: 0 now, `inf` until one in flight finishes."""
        while self._finished and self._finished[0] <= now - self.period:
            self._finished.popleft()
        free = self.limit - self.in_flight
        if free > len(self._finished):
            return 0.0
        if free <= 0:
            return math.inf
        return self._finished[-free] + self.period - now

    def start(self) -> None:
        self.in_flight += 1

    def finish(self, now: float) -> None:
        self.in_flight -= 1
        self._finished.append(now)


class Pacer:
    """Shared by every task of one client: each request waits here for its turn."""

    def __init__(self, pacing: Pacing, *, clock: Clock, sleep: Sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._general = (
            _Window.per_second(pacing.per_second, pacing.headroom) if pacing.per_second else None
        )
        self._hourly: dict[RequestKind, _Window] = {}
        if pacing.creates_per_hour:
            self._hourly["create"] = _Window(pacing.creates_per_hour, HOUR + pacing.headroom)
        if pacing.updates_per_hour:
            self._hourly["update"] = _Window(pacing.updates_per_hour, HOUR + pacing.headroom)
        self._general_lock = asyncio.Lock()
        # A create waiting for its hourly slot must not hold up reads and updates.
        self._hourly_locks: dict[RequestKind, asyncio.Lock] = {
            kind: asyncio.Lock() for kind in self._hourly
        }
        self._finished = asyncio.Event()
        self._hold_until = -math.inf

    def hold(self, seconds: float) -> None:
        """Pause every request for `seconds` (the server said 429: all tasks back off)."""
        self._hold_until = max(self._hold_until, self._clock() + seconds)

    @asynccontextmanager
    async def slot(self, kind: RequestKind) -> AsyncIterator[None]:
        """Wait until a request of this kind may be sent; hold its place while it runs."""
        windows = await self._acquire(kind)
        try:
            yield
        finally:
            now = self._clock()
            for window in windows:
                window.finish(now)
            self._finished.set()

    async def _acquire(self, kind: RequestKind) -> list[_Window]:
        hourly = self._hourly.get(kind)
        if hourly is None:
            return await self._acquire_general([])
        async with self._hourly_locks[kind]:
            await self._wait_for(hourly, kind)
            return await self._acquire_general([hourly])

    async def _acquire_general(self, windows: list[_Window]) -> list[_Window]:
        async with self._general_lock:
            while (wait := self._hold_until - self._clock()) > 0:
                logger.debug("pacing: holding %.3fs after a 429", wait)
                await self._sleep(wait)
            if self._general is not None:
                await self._wait_for(self._general, "request")
                windows = [*windows, self._general]
            for window in windows:
                window.start()
            return windows

    async def _wait_for(self, window: _Window, what: str) -> None:
        while (wait := window.wait(self._clock())) > 0:
            if wait == math.inf:
                self._finished.clear()
                await self._finished.wait()
            else:
                logger.debug("pacing: %s waits %.3fs", what, wait)
                await self._sleep(wait)
