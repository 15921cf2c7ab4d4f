"""How fast and how often the client talks to the API: rate pacing and the retry policy.

imgix documents 4 requests per second per account, 60 source creations and 60 source
updates per hour. The client paces itself to those limits instead of learning them from
429s, and retries what the API lets it retry with exponential backoff and full jitter.
Time comes from an injected `clock` and `sleep`, so tests drive both with a fake clock.

The hourly budgets count what the server counts: a write it accepted (or may have
accepted: no answer, a 5xx), never one it refused. Every wait here can be cut short by a
`Stop` (a signal, or `apply --max-duration`), and a write that could not finish in time
is not started (`NotStarted`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal, NamedTuple

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RequestKind = Literal["read", "create", "update"]

HOUR = 3600.0
# After a stop, a write of an action already under way may still wait this long to go out.
STOP_GRACE = 5.0
# Budget waits shorter than this are pacing, not worth telling the user about.
ANNOUNCED_WAIT = 2.0
# Until a write has been timed, how long one is assumed to take (for --max-duration).
ASSUMED_WRITE_SECONDS = 1.0
# A 429 asking a write to wait longer than an hourly window (and its slack) is not the
# hourly budget: such an answer is not obeyed as one.
LONGEST_BUDGET_WAIT = HOUR * 1.1
# Writes of a kind refused in a row (429s that did not say for how long) that tell its
# hourly budget is spent: the per-second pace is kept, so more than a few are not chance.
REFUSALS_OF_A_SPENT_BUDGET = 8

# Set by the applier once an action's first write is out: its later writes finish the
# action rather than start new work, so a stop lets them through (within STOP_GRACE).
continuing_action: ContextVar[bool] = ContextVar("continuing_action", default=False)
# Set by the applier around an action's writes: awaited when a write starting new work has
# its hourly budget, just before it takes its turn, so the source can be read again after
# a long wait (raising refuses the write; it spends nothing).
before_write: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar(
    "before_write", default=None
)

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
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), if any.

    A date is read against the answer's own `Date` when it has one, else against `now`
    (by default this machine's clock): a runner's clock may be off by any amount.
    """
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
    reference = _server_date(headers) or now or datetime.now(timezone.utc)
    return max(0.0, (when - reference).total_seconds())


def _server_date(headers: Mapping[str, str]) -> datetime | None:
    """The time the server says it answered (`Date`), if it says so readably."""
    value = headers.get("date")
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


# An `X-RateLimit-Reset` at least this large is a Unix time, not seconds to wait: no window
# lasts 30 years, and no clock reads earlier than 2001.
UNIX_TIME_RESET = 1e9


def rate_limit_reset(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds until an exhausted window resets, from `X-RateLimit-Reset`, if any.

    Servers write it as seconds to wait or as a Unix time, measured from the answer's
    `Date` when it has one, else from `now` (this machine's clock by default). None when
    the header is absent or unreadable, or when `X-RateLimit-Remaining` says requests are
    left (the window is not what refused).
    """
    if (_number(headers.get("x-ratelimit-remaining")) or 0.0) > 0:
        return None
    seconds = _number(headers.get("x-ratelimit-reset"))
    if seconds is None:
        return None
    if seconds >= UNIX_TIME_RESET:
        # On the server's clock when the answer says it, as for `retry_after`.
        date = _server_date(headers)
        if date is not None:
            seconds -= date.timestamp()
        else:
            seconds -= now if now is not None else datetime.now(timezone.utc).timestamp()
    return max(0.0, seconds)


def _number(value: str | None) -> float | None:
    """A header's finite number, or None when it is absent or not one."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


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
        # Until when the server said the window is full (writes of another client count).
        self.full_until = -math.inf
        self.refused_in_a_row = 0

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
        if free <= 0:
            return math.inf
        own = 0.0 if free > len(self._finished) else self._finished[-free] + self.period - now
        return max(own, self.full_until - now, 0.0)

    def start(self) -> None:
        self.in_flight += 1

    def finish(self, now: float) -> None:
        self.in_flight -= 1
        self._finished.append(now)

    def drop(self) -> None:
        """The request was refused: it does not count."""
        self.in_flight -= 1


class NotStarted(Exception):
    """A write was not sent: the run is stopping (a signal) or would pass its deadline."""


class Stop:
    """Whether writes may still be started: a signal stops them, and so does a deadline.

    `deadline`, on the pacer's clock, is `apply --max-duration`: a write starts only when
    its wait for the budget and its expected duration end before it. Writes in flight
    always finish.
    """

    def __init__(self, *, deadline: float | None = None, clock: Clock | None = None) -> None:
        self.deadline = deadline
        self.reason: str | None = None
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []

    def expired(self) -> bool:
        """Whether the deadline has passed (on the clock it was set with)."""
        return (
            self.deadline is not None and self._clock is not None and self._clock() >= self.deadline
        )

    def request(self, reason: str) -> None:
        """Stop starting writes; the first reason given is the one reported."""
        if self.reason is None:
            self.reason = reason
        for listener in list(self._listeners):
            listener()

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` on every stop request; returns what unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def pause(self, sleep: Sleep, seconds: float | None, wake: asyncio.Event) -> None:
        """Sleep `seconds` (None: until `wake` is set), returning early on a stop request."""
        stopped = asyncio.Event()
        unsubscribe = self.subscribe(stopped.set)
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stopped.wait())]
        waiters.append(asyncio.ensure_future(wake.wait() if seconds is None else sleep(seconds)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            unsubscribe()
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)


# A NamedTuple, not a frozen dataclass: about 0.05 ms to define at start-up, not 0.4.
class BudgetWait(NamedTuple):
    """A write waits for its hourly budget: expected, and announced to the user."""

    kind: RequestKind
    seconds: float
    limit: int


class Ticket:
    """One request's place in the windows; `spent` says whether the server counted it.

    A write the server refused (429, another 4xx) did not spend the hourly budget; one
    whose outcome is unknown (no answer, a 5xx) is counted, as it may have been committed.
    """

    def __init__(self) -> None:
        self.spent = True


class Pacer:
    """Shared by every request of a process: each waits here for its turn.

    One pacer serves the listing and the writes of a run (`Connection` holds it), so the
    per-second pace holds across them. It outlives event loops: its locks are made anew
    for each loop, its windows are kept.
    """

    def __init__(
        self,
        pacing: Pacing,
        *,
        clock: Clock,
        sleep: Sleep,
        stop: Stop | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.stop = stop or Stop()
        # Told when a write waits for its hourly budget (the progress display).
        self.on_budget_wait: Callable[[BudgetWait], None] | None = None
        self._general = (
            _Window.per_second(pacing.per_second, pacing.headroom) if pacing.per_second else None
        )
        self._hourly: dict[RequestKind, _Window] = {}
        if pacing.creates_per_hour:
            self._hourly["create"] = _Window(pacing.creates_per_hour, HOUR + pacing.headroom)
        if pacing.updates_per_hour:
            self._hourly["update"] = _Window(pacing.updates_per_hour, HOUR + pacing.headroom)
        self._hold_until = -math.inf
        self._write_seconds = ASSUMED_WRITE_SECONDS
        self._loop: asyncio.AbstractEventLoop | None = None
        self._general_lock = asyncio.Lock()
        self._hourly_locks: dict[RequestKind, asyncio.Lock] = {}
        self._finished = asyncio.Event()

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        self._loop = loop
        self._general_lock = asyncio.Lock()
        # A create waiting for its hourly slot must not hold up reads and updates.
        self._hourly_locks = {kind: asyncio.Lock() for kind in self._hourly}
        self._finished = asyncio.Event()

    def spent_elsewhere(self, kind: RequestKind, seconds: float | None) -> bool:
        """The server refused a write for `seconds` (429; None: it did not say, so a whole
        window): its hourly budget is spent, by this run or another one. Whether writes of
        `kind` now wait for it.

        The client's own count cannot see another run's writes in the same hour; the
        429 is the only sign of them, and waiting for it beats meeting it again.
        """
        window = self._hourly.get(kind)
        if window is None:
            return False
        seconds = window.period if seconds is None else seconds
        if not 0 < seconds <= LONGEST_BUDGET_WAIT:
            return False
        window.full_until = max(window.full_until, self._clock() + seconds)
        # Refusals before it are answered by this wait: a write refused through it and
        # its retries must not add a second window for the same refusals.
        window.refused_in_a_row = 0
        return True

    def refused(self, kind: RequestKind, *, said_how_long: bool) -> None:
        """A write of `kind` was refused with a 429: enough of them in a row, none of them
        saying how long to wait, and the hourly budget is taken as spent for a window."""
        window = self._hourly.get(kind)
        if window is None or said_how_long:
            return
        window.refused_in_a_row += 1
        if window.refused_in_a_row >= REFUSALS_OF_A_SPENT_BUDGET:
            self.spent_elsewhere(kind, None)

    def hold(self, seconds: float) -> None:
        """Pause every request for `seconds` (the server said 429: all tasks back off)."""
        self._hold_until = max(self._hold_until, self._clock() + seconds)

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if a stop is requested meanwhile."""
        self._bind()
        await self.stop.pause(self._sleep, seconds, self._finished)

    @asynccontextmanager
    async def slot(self, kind: RequestKind, *, starting: bool = True) -> AsyncIterator[Ticket]:
        """Wait until a request of this kind may be sent; hold its place while it runs.

        A write `starting` new work is refused (`NotStarted`) once a stop is requested or
        when it could not finish before the deadline.
        """
        self._bind()
        windows = await self._acquire(kind, starting)
        ticket = Ticket()
        sent = self._clock()
        try:
            yield ticket
        finally:
            now = self._clock()
            for window in windows:
                if window is self._general or ticket.spent:
                    window.finish(now)
                else:
                    window.drop()
                if window is not self._general and ticket.spent:
                    window.refused_in_a_row = 0
            if kind != "read":
                self._write_seconds = max(self._write_seconds, now - sent)
            self._finished.set()

    async def _acquire(self, kind: RequestKind, starting: bool) -> list[_Window]:
        self._check_stop(kind, 0.0, starting)
        hourly = self._hourly.get(kind)
        if hourly is None:
            await self._before_write(kind, starting)
            return await self._acquire_general([], kind, starting)
        async with self._hourly_locks[kind]:
            await self._wait_for(hourly, kind, starting)
            # The budget's place is held while the source is read: no other write takes it.
            await self._before_write(kind, starting)
            return await self._acquire_general([hourly], kind, starting)

    async def _before_write(self, kind: RequestKind, starting: bool) -> None:
        check = before_write.get()
        if kind != "read" and starting and check is not None:
            self._check_stop(kind, 0.0, starting)
            await check()

    async def _acquire_general(
        self, windows: list[_Window], kind: RequestKind, starting: bool
    ) -> list[_Window]:
        async with self._general_lock:
            while (wait := self._hold_until - self._clock()) > 0:
                self._check_stop(kind, wait, starting)
                logger.debug("pacing: holding %.3fs after a 429", wait)
                await self.pause(wait)
            if self._general is not None:
                await self._wait_for(self._general, kind, starting)
                windows = [*windows, self._general]
            self._check_stop(kind, 0.0, starting)
            for window in windows:
                window.start()
            return windows

    async def _wait_for(self, window: _Window, kind: RequestKind, starting: bool) -> None:
        announced = window is self._general
        while (wait := window.wait(self._clock())) > 0:
            budget = ""
            if not announced and wait != math.inf:
                budget = f" (the hourly {kind} budget frees up in {math.ceil(wait / 60)} min)"
            self._check_stop(kind, 0.0 if wait == math.inf else wait, starting, budget)
            if wait == math.inf:
                self._finished.clear()
                await self.stop.pause(self._sleep, None, self._finished)
                continue
            logger.debug("pacing: %s waits %.3fs", kind, wait)
            if not announced and wait >= ANNOUNCED_WAIT and self.on_budget_wait is not None:
                self.on_budget_wait(BudgetWait(kind, wait, window.limit))
                announced = True
            await self.pause(wait)

    def check_retry(self, kind: RequestKind, wait: float, *, starting: bool) -> None:
        """Raise `NotStarted` when a write retried after `wait` could not go out then."""
        self._check_stop(kind, wait, starting)

    def _check_stop(self, kind: RequestKind, wait: float, starting: bool, why: str = "") -> None:
        """Raise `NotStarted` when a write should not go out after waiting `wait` more."""
        if kind == "read":
            return
        if self.stop.reason is not None and (starting or wait > STOP_GRACE):
            raise NotStarted(self.stop.reason)
        deadline = self.stop.deadline
        if deadline is None:
            return
        needed = wait + (self._write_seconds if starting else 0.0)
        if self._clock() + needed > deadline:
            raise NotStarted(f"it could not finish within --max-duration{why}")
