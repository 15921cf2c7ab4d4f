"""Shared test fixtures."""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import signal
from collections.abc import Iterator

import pytest
from hypothesis import settings
from starlette.applications import Starlette

from reconciler import redact
from reconciler.emulator import EMULATOR_API_KEY, RateLimits, SourceStore, create_app
from reconciler.emulator.server import running_app

# The suite is a fixed-seed run, so CI gives one answer for one tree; a property test's
# search for new examples is a campaign run by hand (IMGIX_RECONCILER_CAMPAIGN, or
# HYPOTHESIS_PROFILE=default).
# The suite signals the commands it starts and expects Ctrl-C's behaviour of them. Started
# as a background job (`&` without job control) it would ignore SIGINT, and so would they;
# a handler set here is reset to the default in each command it starts.
signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile("suite", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


@pytest.fixture(autouse=True)
def _redaction_as_before() -> Iterator[None]:
    """Each test ends with the redaction registry as it began.

    A CLI process masks every value it read for its whole life; the suite runs many in one
    process, and a short secret one test registered (`respect_origin`) would otherwise be
    masked in the output of every later test.
    """
    registered = set(redact._values)
    yield
    if redact._values != registered:
        redact._values.clear()
        redact._values.update(registered)
        redact._refresh()


class FakeClock:
    """Time that moves only when a task sleeps, so tests never wait for real.

    Concurrent sleepers do not add up: time jumps to the earliest pending wake-up, the way
    a real clock would pass for tasks sleeping side by side. Pass `clock.time` (or the
    clock itself, it is callable) wherever a clock is injected, and `clock.sleep` for sleep.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.start = start
        self.sleeps: list[float] = []
        self._wakes: list[float] = []

    def time(self) -> float:
        return self.now

    __call__ = time

    @property
    def elapsed(self) -> float:
        """Seconds passed since the clock was made."""
        return self.now - self.start

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake = self.now + seconds
        heapq.heappush(self._wakes, wake)
        try:
            while self.now < wake:
                # Let runnable tasks go first; then the earliest sleeper moves time on.
                for _ in range(3):
                    await asyncio.sleep(0)
                if self._wakes[0] >= wake:
                    self.now = max(self.now, wake)
        finally:
            self._wakes.remove(wake)
            heapq.heapify(self._wakes)


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fresh `FakeClock`."""
    return FakeClock()


# --------------------------------------------------------------------------- emulator


@pytest.fixture
def emulator_store(fake_clock: FakeClock) -> SourceStore:
    """An empty emulated account on `fake_clock`, rate limits off (tests turn them on)."""
    return SourceStore(
        clock=fake_clock,
        rng=random.Random(20240601),
        limits=RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None),
    )


@pytest.fixture(scope="session")
def _emulator_server() -> Iterator[tuple[Starlette, str]]:
    # One uvicorn for the whole session (stopping one takes 0.2 s); tests swap its store.
    app = create_app(SourceStore())
    with running_app(app) as url:
        yield app, url


@pytest.fixture
def emulator_url(
    emulator_store: SourceStore, _emulator_server: tuple[Starlette, str]
) -> Iterator[str]:
    """`emulator_store` served over real HTTP (uvicorn on 127.0.0.1); the base URL."""
    app, url = _emulator_server
    app.state.store = emulator_store
    yield url
    app.state.store = SourceStore()


@pytest.fixture
def emulator_headers() -> dict[str, str]:
    """Headers of a well-formed, authorized request to the emulator."""
    return {
        "Authorization": f"Bearer {EMULATOR_API_KEY}",
        "Content-Type": "application/vnd.api+json",
        "Accept": "application/vnd.api+json",
    }
