"""Pacing and retry policy: pure timing, driven by a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import time
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from conftest import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.pacing import (
    BudgetWait,
    NotStarted,
    Pacer,
    Pacing,
    RequestKind,
    RetryPolicy,
    Stop,
    before_write,
    rate_limit_reset,
    retry_after,
)


def _max_in_window(times: list[float], period: float) -> int:
    """The most events in any half-open window (t - period, t]."""
    return max(sum(1 for other in times if t - period < other <= t) for t in times)


async def _run(pacer: Pacer, clock: FakeClock, kinds: list[RequestKind]) -> list[float]:
    sent: list[float] = []

    async def one(kind: RequestKind) -> None:
        async with pacer.slot(kind):
            sent.append(clock.time())

    await asyncio.gather(*(one(kind) for kind in kinds))
    return sent


def test_concurrent_requests_never_exceed_four_in_any_second(fake_clock: FakeClock) -> None:
    pacer = Pacer(Pacing(headroom=0.0), clock=fake_clock, sleep=fake_clock.sleep)

    sent = asyncio.run(_run(pacer, fake_clock, ["read"] * 40))

    assert _max_in_window(sent, 1.0) == 4
    # ...and no slower than that: 40 requests fit in 9 s of waiting.
    assert fake_clock.elapsed == pytest.approx(9.0)


def test_headroom_lengthens_the_window(fake_clock: FakeClock) -> None:
    pacer = Pacer(Pacing(per_second=1.0, headroom=0.25), clock=fake_clock, sleep=fake_clock.sleep)

    sent = asyncio.run(_run(pacer, fake_clock, ["read"] * 3))

    assert [t - fake_clock.start for t in sent] == [0.0, 1.25, 2.5]


def test_a_slow_request_holds_its_place_until_it_is_answered(fake_clock: FakeClock) -> None:
    # The server counts a request when it arrives, which may be as late as the answer.
    pacer = Pacer(Pacing(per_second=2.0, headroom=0.0), clock=fake_clock, sleep=fake_clock.sleep)
    starts: list[float] = []

    async def request(duration: float) -> None:
        async with pacer.slot("read"):
            starts.append(fake_clock.elapsed)
            await fake_clock.sleep(duration)

    async def scenario() -> None:
        await asyncio.gather(request(3.0), request(3.0), request(0.0))

    asyncio.run(scenario())

    assert starts == [0.0, 0.0, 4.0]


def test_a_failed_request_frees_its_place(fake_clock: FakeClock) -> None:
    pacer = Pacer(Pacing(per_second=1.0, headroom=0.0), clock=fake_clock, sleep=fake_clock.sleep)

    async def scenario() -> None:
        with pytest.raises(RuntimeError):
            async with pacer.slot("create"):
                raise RuntimeError("connection lost")
        async with pacer.slot("create"):
            pass

    asyncio.run(scenario())

    assert fake_clock.elapsed == 1.0


def test_fractional_rate_spaces_requests(fake_clock: FakeClock) -> None:
    pacer = Pacer(Pacing(per_second=0.5, headroom=0.0), clock=fake_clock, sleep=fake_clock.sleep)

    sent = asyncio.run(_run(pacer, fake_clock, ["read"] * 3))

    assert [t - fake_clock.start for t in sent] == [0.0, 2.0, 4.0]


def test_creates_are_paced_per_hour(fake_clock: FakeClock) -> None:
    pacer = Pacer(Pacing(creates_per_hour=3), clock=fake_clock, sleep=fake_clock.sleep)

    sent = asyncio.run(_run(pacer, fake_clock, ["create"] * 7))

    assert _max_in_window(sent, 3600.0) == 3
    assert fake_clock.elapsed >= 2 * 3600


def test_a_create_waiting_for_its_hourly_slot_does_not_hold_up_reads(
    fake_clock: FakeClock,
) -> None:
    pacer = Pacer(
        Pacing(creates_per_hour=1, headroom=0.0), clock=fake_clock, sleep=fake_clock.sleep
    )
    order: list[tuple[RequestKind, float]] = []

    async def scenario() -> None:
        async def one(kind: RequestKind) -> None:
            async with pacer.slot(kind):
                order.append((kind, fake_clock.elapsed))

        await one("create")
        await asyncio.gather(one("create"), one("read"), one("update"))

    asyncio.run(scenario())

    assert [kind for kind, _ in order] == ["create", "read", "update", "create"]
    assert order[1][1] < 1.0 and order[2][1] < 1.0
    assert order[3][1] >= 3600.0


def test_none_disables_a_limit(fake_clock: FakeClock) -> None:
    pacer = Pacer(
        Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None),
        clock=fake_clock,
        sleep=fake_clock.sleep,
    )

    asyncio.run(_run(pacer, fake_clock, ["read", "create", "update"] * 50))

    assert fake_clock.elapsed == 0.0


def test_hold_pauses_everyone(fake_clock: FakeClock) -> None:
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep)
    pacer.hold(5.0)

    sent = asyncio.run(_run(pacer, fake_clock, ["read"] * 3))

    assert all(t - fake_clock.start >= 5.0 for t in sent)


@pytest.mark.parametrize("field", ["per_second", "creates_per_hour", "updates_per_hour"])
def test_pacing_rejects_non_positive_limits(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Pacing(**{field: 0})
    with pytest.raises(ValueError, match="headroom"):
        Pacing(headroom=-1.0)


@settings(max_examples=50, deadline=None)
@given(attempt=st.integers(min_value=1, max_value=40), seed=st.integers(0, 2**32))
def test_backoff_is_full_jitter_under_the_cap(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base=0.5, cap=30.0, jitter=random.Random(seed))

    wait = policy.backoff(attempt)

    assert 0.0 <= wait <= min(30.0, 0.5 * 2 ** (attempt - 1))
    # Drawn uniformly from the whole of that range: the same draw of the same generator.
    assert wait == random.Random(seed).uniform(0.0, min(30.0, 0.5 * 2 ** (attempt - 1)))


def test_backoff_grows_exponentially_on_average() -> None:
    policy = RetryPolicy(base=1.0, cap=1000.0, jitter=random.Random(7))

    means = [sum(policy.backoff(a) for _ in range(400)) / 400 for a in (1, 3, 5)]

    assert means[0] < means[1] < means[2]


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(deadline=-1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("nan", 0.0),  # no wait asked, as for a negative one: the attempts still end
        ("1e999", math.inf),  # asked as written: the client refuses a wait past its deadline
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str, expected: float) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)

    assert retry_after({"retry-after": header}, now=now) == pytest.approx(expected)


def test_retry_after_absent_or_garbled_is_none() -> None:
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-ratelimit-reset": "7"}, 7.0),
        ({"x-ratelimit-reset": " 2.5 ", "x-ratelimit-remaining": "0"}, 2.5),
        ({"x-ratelimit-reset": "1700000030"}, 30.0),  # a Unix time
        ({"x-ratelimit-reset": "1699999990"}, 0.0),  # already past
        ({"x-ratelimit-reset": "-3"}, 0.0),
        ({"x-ratelimit-reset": "7", "x-ratelimit-remaining": "3"}, None),  # not this window
        ({"x-ratelimit-reset": "7", "x-ratelimit-remaining": "none"}, 7.0),
        ({"x-ratelimit-reset": "soon"}, None),
        ({"x-ratelimit-reset": "nan"}, None),
        ({"x-ratelimit-reset": "inf"}, None),
        ({"x-ratelimit-remaining": "0"}, None),
        ({}, None),
    ],
)
def test_rate_limit_reset_reads_seconds_or_a_unix_time(
    headers: dict[str, str], expected: float | None
) -> None:
    assert rate_limit_reset(headers, now=1_700_000_000.0) == (
        pytest.approx(expected) if expected is not None else None
    )


# --------------------------------------------------------------------------- budgets and stops


def test_a_refused_write_does_not_spend_the_hourly_budget(fake_clock: FakeClock) -> None:
    pacer = Pacer(
        Pacing(per_second=None, updates_per_hour=2), clock=fake_clock, sleep=fake_clock.sleep
    )

    async def scenario() -> None:
        for _ in range(5):  # five 429s: the server counted none of them
            async with pacer.slot("update") as ticket:
                ticket.spent = False
        for _ in range(2):
            async with pacer.slot("update"):
                pass
        assert fake_clock.elapsed == 0.0
        async with pacer.slot("update"):  # the budget of two is spent: an hour's wait
            pass

    asyncio.run(scenario())

    assert fake_clock.elapsed == pytest.approx(3600.01)


def test_an_accepted_write_spends_the_budget(fake_clock: FakeClock) -> None:
    pacer = Pacer(
        Pacing(per_second=None, updates_per_hour=2), clock=fake_clock, sleep=fake_clock.sleep
    )

    asyncio.run(_run(pacer, fake_clock, ["update"] * 3))

    assert fake_clock.elapsed >= 3600.0


def test_a_budget_wait_is_announced_once_with_its_length(fake_clock: FakeClock) -> None:
    pacer = Pacer(
        Pacing(per_second=None, creates_per_hour=1, headroom=0.0),
        clock=fake_clock,
        sleep=fake_clock.sleep,
    )
    waits: list[BudgetWait] = []
    pacer.on_budget_wait = waits.append

    asyncio.run(_run(pacer, fake_clock, ["create"] * 2))

    assert waits == [BudgetWait("create", 3600.0, 1)]


def test_a_stop_wakes_a_write_waiting_for_the_budget_and_it_is_not_started(
    fake_clock: FakeClock,
) -> None:
    async def forever(seconds: float) -> None:
        await asyncio.Event().wait()  # only a stop can end this wait

    stop = Stop()
    pacer = Pacer(
        Pacing(per_second=None, updates_per_hour=1), clock=fake_clock, sleep=forever, stop=stop
    )
    outcomes: list[str] = []

    async def write() -> None:
        try:
            async with pacer.slot("update"):
                outcomes.append("sent")
        except NotStarted as error:
            outcomes.append(str(error))

    async def scenario() -> None:
        await write()
        waiting = asyncio.ensure_future(write())
        for _ in range(5):
            await asyncio.sleep(0)
        stop.request("stopped by SIGTERM")
        await waiting
        await write()  # nothing starts after a stop

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))

    assert outcomes == ["sent", "stopped by SIGTERM", "stopped by SIGTERM"]


def test_reads_and_a_started_action_go_on_after_a_stop(fake_clock: FakeClock) -> None:
    stop = Stop()
    stop.request("stopped by SIGINT")
    pacer = Pacer(Pacing(), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)

    async def scenario() -> None:
        async with pacer.slot("read"):
            pass
        async with pacer.slot("update", starting=False):
            pass
        with pytest.raises(NotStarted):
            async with pacer.slot("update"):
                pass

    asyncio.run(scenario())


def test_a_write_that_cannot_finish_before_the_deadline_is_refused_without_waiting(
    fake_clock: FakeClock,
) -> None:
    stop = Stop(deadline=fake_clock.time() + 1800.0, clock=fake_clock)
    pacer = Pacer(
        Pacing(per_second=None, updates_per_hour=2),
        clock=fake_clock,
        sleep=fake_clock.sleep,
        stop=stop,
    )
    sent: list[float] = []

    async def scenario() -> None:
        for _ in range(2):
            async with pacer.slot("update"):
                sent.append(fake_clock.elapsed)
        with pytest.raises(NotStarted, match="max-duration"):
            async with pacer.slot("update"):
                pass

    asyncio.run(scenario())

    assert sent == [0.0, 0.0]
    assert fake_clock.elapsed == 0.0  # refused at once, not after sleeping to the deadline


def test_one_pacer_keeps_its_budget_across_event_loops(fake_clock: FakeClock) -> None:
    # The CLI lists in one asyncio.run and writes in another: the pace holds across them.
    pacer = Pacer(
        Pacing(per_second=None, updates_per_hour=1), clock=fake_clock, sleep=fake_clock.sleep
    )

    asyncio.run(_run(pacer, fake_clock, ["update"]))
    asyncio.run(_run(pacer, fake_clock, ["update"]))

    assert fake_clock.elapsed >= 3600.0


def test_a_budget_spent_elsewhere_holds_that_kind_only_and_a_deadline_names_it(
    fake_clock: FakeClock,
) -> None:
    stop = Stop(deadline=fake_clock.time() + 600.0, clock=fake_clock)
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)
    waits: list[BudgetWait] = []
    pacer.on_budget_wait = waits.append

    # No hourly window for reads, and no budget lasts longer than an hour and a bit.
    assert not pacer.spent_elsewhere("read", 30.0)
    assert not pacer.spent_elsewhere("update", 2 * 3600.0)
    assert pacer.spent_elsewhere("update", 1200.0)

    async def scenario() -> None:
        async with pacer.slot("create"):
            pass
        with pytest.raises(NotStarted, match=r"max-duration \(the hourly update budget .* 20 min"):
            async with pacer.slot("update"):
                pass
        stop.deadline = None
        async with pacer.slot("update"):
            pass

    asyncio.run(scenario())

    assert waits == [BudgetWait("update", 1200.0, 60)]
    assert fake_clock.elapsed == 1200.0


def test_refusals_in_a_row_that_say_not_how_long_mark_the_budget_spent_for_a_window(
    fake_clock: FakeClock,
) -> None:
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep)

    async def accepted() -> None:
        async with pacer.slot("update"):
            pass

    async def scenario() -> None:
        for _ in range(7):
            pacer.refused("update", said_how_long=False)
        pacer.refused("update", said_how_long=True)  # that one said: it counts elsewhere
        await accepted()  # an accepted write starts the count again
        for _ in range(7):
            pacer.refused("update", said_how_long=False)
        await accepted()
        assert fake_clock.elapsed == 0.0
        for _ in range(8):
            pacer.refused("update", said_how_long=False)
        pacer.refused("create", said_how_long=False)
        async with pacer.slot("create"):
            pass
        assert fake_clock.elapsed == 0.0  # another kind's budget is its own
        await accepted()

    asyncio.run(scenario())

    assert fake_clock.elapsed == pytest.approx(3600.01)


# --------------------------------------------------------------------------- edge cases


def test_retry_after_reads_a_date_without_a_zone_as_utc() -> None:
    # RFC 5322's "-0000" zone parses to a naive datetime: it must not crash the comparison.
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 -0000"}, now=now) == 10.0


def test_retry_after_a_date_already_past_is_no_wait() -> None:
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}) == 0.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-ratelimit-reset": "7", "x-ratelimit-remaining": "1"}, None),
        ({"x-ratelimit-reset": "1000000000"}, 0.0),  # the smallest Unix time: long past
        ({"x-ratelimit-reset": "999999999"}, 999999999.0),  # the largest seconds to wait
    ],
)
def test_rate_limit_reset_at_its_boundaries(headers: dict[str, str], expected: float) -> None:
    assert rate_limit_reset(headers, now=1_700_000_000.0) == expected


def test_a_retry_policy_of_one_attempt_is_allowed_and_each_negative_refused() -> None:
    assert RetryPolicy(attempts=1).attempts == 1
    # Zero is no wait (retries at once, no time for them), not a negative one.
    assert RetryPolicy(base=0.0, cap=0.0, deadline=0.0).backoff(3) == 0.0
    for field in ("base", "cap", "deadline"):
        with pytest.raises(ValueError, match="must not be negative"):
            RetryPolicy(**{field: -0.5})  # type: ignore[arg-type]


def test_a_stop_with_a_deadline_expires_on_its_clock(fake_clock: FakeClock) -> None:
    stop = Stop(deadline=fake_clock.now + 10, clock=fake_clock)
    assert not stop.expired()
    fake_clock.now += 10
    assert stop.expired()
    assert not Stop(deadline=None, clock=fake_clock).expired()


def test_a_pacer_serves_one_event_loop_after_another(fake_clock: FakeClock) -> None:
    # The CLI runs the listing and the apply in separate `asyncio.run` calls.
    pacer = Pacer(Pacing(per_second=2.0), clock=fake_clock, sleep=fake_clock.sleep)

    async def request(kind: RequestKind) -> None:
        async with pacer.slot(kind):
            await fake_clock.sleep(0.1)

    async def use() -> None:
        await pacer.pause(1.0)
        kinds: list[RequestKind] = ["read", "update", "read", "update"]
        await asyncio.gather(*map(request, kinds))  # they queue on the locks

    asyncio.run(use())
    asyncio.run(use())
    assert fake_clock.now >= fake_clock.start + 4.0


def test_a_write_starts_only_with_time_left_for_it_and_reads_do_not_set_that_time(
    fake_clock: FakeClock,
) -> None:
    # --max-duration: a write needs the longest write seen so far (1 s until one is seen).
    stop = Stop(deadline=fake_clock.now + 1.0, clock=fake_clock)
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)

    async def scenario() -> None:
        async with pacer.slot("read"):
            fake_clock.advance(3.0)  # a slow read: says nothing about writes
        stop.deadline = fake_clock.now + 1.0
        async with pacer.slot("update"):  # exactly enough time left
            fake_clock.advance(0.25)
        stop.deadline = fake_clock.now + 0.99
        with pytest.raises(NotStarted, match="--max-duration"):
            async with pacer.slot("update"):
                pass

    asyncio.run(scenario())


def test_a_deadline_without_a_clock_never_expires() -> None:
    assert not Stop(deadline=10.0).expired()


def test_a_write_after_a_stop_is_refused_at_once_not_after_queuing_behind_reads(
    fake_clock: FakeClock,
) -> None:
    stop = Stop()
    pacer = Pacer(Pacing(per_second=1.0), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)
    refused_at: list[float] = []

    async def read() -> None:
        async with pacer.slot("read"):
            pass

    async def write() -> None:
        try:
            async with pacer.slot("update"):
                pass
        except NotStarted:
            refused_at.append(fake_clock.elapsed)

    async def scenario() -> None:
        await read()
        stop.request("stopped by SIGTERM")
        await asyncio.gather(read(), write())  # the read waits a second for its turn

    asyncio.run(scenario())

    assert refused_at == [0.0]
    assert fake_clock.elapsed == pytest.approx(1.01)


def test_a_write_queued_behind_reads_when_the_stop_comes_is_not_sent(
    fake_clock: FakeClock,
) -> None:
    stop = Stop()
    pacer = Pacer(
        Pacing(per_second=2.0, headroom=0.0), clock=fake_clock, sleep=fake_clock.sleep, stop=stop
    )
    outcomes: list[str] = []

    async def request(kind: RequestKind) -> None:
        try:
            async with pacer.slot(kind):
                outcomes.append(f"{kind} sent at {fake_clock.elapsed}")
        except NotStarted as error:
            outcomes.append(f"{kind} {error} at {fake_clock.elapsed}")

    async def stop_later() -> None:
        await fake_clock.sleep(0.5)
        stop.request("stopped by SIGTERM")

    async def scenario() -> None:
        # The third read waits a second for its turn; the update queues behind it.
        await asyncio.gather(*map(request, ["read", "read", "read", "update"]), stop_later())

    asyncio.run(scenario())

    assert outcomes == [
        "read sent at 0.0",
        "read sent at 0.0",
        "read sent at 1.0",
        "update stopped by SIGTERM at 1.0",
    ]


def test_429s_for_a_kind_without_an_hourly_budget_change_nothing(fake_clock: FakeClock) -> None:
    pacer = Pacer(
        Pacing(per_second=None, creates_per_hour=None), clock=fake_clock, sleep=fake_clock.sleep
    )

    async def scenario() -> None:
        for _ in range(10):
            pacer.refused("create", said_how_long=False)
        async with pacer.slot("create"):
            pass

    asyncio.run(scenario())

    assert fake_clock.elapsed == 0.0


@pytest.mark.parametrize("updates_per_hour", [60, None])
def test_only_a_write_starting_new_work_checks_its_source_first(
    fake_clock: FakeClock, updates_per_hour: int | None
) -> None:
    # The applier reads the source again there; a read doing so would never end.
    pacer = Pacer(
        Pacing(per_second=None, updates_per_hour=updates_per_hour),
        clock=fake_clock,
        sleep=fake_clock.sleep,
    )
    checks = 0
    checked_by: list[int] = []

    async def check() -> None:
        nonlocal checks
        checks += 1

    async def scenario() -> None:
        before_write.set(check)
        kinds: list[tuple[RequestKind, bool]] = [
            ("read", True),
            ("update", False),
            ("update", True),
        ]
        for kind, starting in kinds:
            async with pacer.slot(kind, starting=starting):
                checked_by.append(checks)

    asyncio.run(scenario())

    # A read, then a write continuing an action: unchecked; a write starting one: checked.
    assert checked_by == [0, 0, 1]


def test_a_write_behind_one_checking_its_source_when_the_stop_comes_reads_nothing(
    fake_clock: FakeClock,
) -> None:
    stop = Stop()
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)
    checked: list[str] = []

    async def write(name: str) -> str:
        async def check() -> None:
            checked.append(name)
            await fake_clock.sleep(0.5)  # the source is read again meanwhile
            stop.request("stopped by SIGTERM")

        before_write.set(check)
        try:
            async with pacer.slot("update"):
                return "sent"
        except NotStarted as error:
            return str(error)

    async def scenario() -> list[str]:
        return await asyncio.gather(write("first"), write("second"))

    assert asyncio.run(scenario()) == ["stopped by SIGTERM"] * 2
    assert checked == ["first"]


def test_a_retry_after_a_stop_goes_out_only_to_finish_an_action_soon(
    fake_clock: FakeClock,
) -> None:
    stop = Stop()
    pacer = Pacer(Pacing(), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)
    pacer.check_retry("update", 60.0, starting=True)  # no stop yet: anything goes
    stop.request("stopped by SIGINT")
    pacer.check_retry("read", 60.0, starting=True)
    pacer.check_retry("update", 1.0, starting=False)
    pacer.check_retry("update", 5.0, starting=False)  # the grace a started action has
    with pytest.raises(NotStarted, match="SIGINT"):
        pacer.check_retry("update", 1.0, starting=True)
    with pytest.raises(NotStarted, match="SIGINT"):
        pacer.check_retry("update", 6.0, starting=False)


def test_a_429_that_asks_for_a_short_or_very_long_wait_is_no_spent_budget(
    fake_clock: FakeClock,
) -> None:
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep)
    assert not pacer.spent_elsewhere("update", 0.0)
    assert pacer.spent_elsewhere("update", 0.5)
    assert pacer.spent_elsewhere("update", 3600 * 1.1)  # a window and its slack, at most
    assert not pacer.spent_elsewhere("update", 3600 * 1.1 + 1)


def test_429s_in_a_row_counted_while_each_holds_its_slot_mark_the_budget_spent(
    fake_clock: FakeClock,
) -> None:
    # The client says `refused` inside the slot, then the slot closes unspent.
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep)

    async def scenario() -> None:
        for _ in range(8):
            async with pacer.slot("update") as ticket:
                ticket.spent = False
                pacer.refused("update", said_how_long=False)
        async with pacer.slot("update"):
            pass

    asyncio.run(scenario())

    assert fake_clock.elapsed == pytest.approx(3600.01)


def test_a_refused_request_still_takes_its_turn_in_the_per_second_pace(
    fake_clock: FakeClock,
) -> None:
    # The server counted the 429'd request against its rate, if not against the budget.
    pacer = Pacer(Pacing(per_second=1.0, headroom=0.0), clock=fake_clock, sleep=fake_clock.sleep)

    async def scenario() -> None:
        async with pacer.slot("update") as ticket:
            ticket.spent = False
        async with pacer.slot("update"):
            pass

    asyncio.run(scenario())

    assert fake_clock.elapsed == 1.0


def test_the_longest_write_seen_is_the_time_a_write_needs_before_the_deadline(
    fake_clock: FakeClock,
) -> None:
    stop = Stop(clock=fake_clock)
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)

    async def scenario() -> None:
        async with pacer.slot("update"):
            fake_clock.advance(5.0)  # a slow write
        stop.deadline = fake_clock.now + 3.0
        with pytest.raises(NotStarted, match="--max-duration"):
            async with pacer.slot("update"):
                pass
        # A write finishing an action needs no time of its own, only its wait.
        stop.deadline = fake_clock.now + 0.5
        async with pacer.slot("update", starting=False):
            pass

    asyncio.run(scenario())


def test_a_write_held_by_a_429_past_the_deadline_is_refused_without_waiting(
    fake_clock: FakeClock,
) -> None:
    stop = Stop(deadline=fake_clock.now + 10.0, clock=fake_clock)
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)
    pacer.hold(30.0)

    async def scenario() -> None:
        with pytest.raises(NotStarted, match="--max-duration"):
            async with pacer.slot("update"):
                pass

    asyncio.run(scenario())

    assert fake_clock.elapsed == 0.0


def test_a_short_hold_holds_too(fake_clock: FakeClock) -> None:
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep)
    pacer.hold(0.5)

    asyncio.run(_run(pacer, fake_clock, ["read"]))

    assert fake_clock.elapsed == 0.5


def test_only_waits_for_the_hourly_budget_of_two_seconds_or_more_are_announced(
    fake_clock: FakeClock,
) -> None:
    pacer = Pacer(Pacing(per_second=0.25), clock=fake_clock, sleep=fake_clock.sleep)
    waits: list[BudgetWait] = []
    pacer.on_budget_wait = waits.append

    async def scenario() -> None:
        for _ in range(2):  # the per-second pace: 4 s between these, never announced
            async with pacer.slot("update"):
                pass
        pacer.spent_elsewhere("create", 1.5)
        async with pacer.slot("create"):
            pass
        pacer.spent_elsewhere("create", 2.0)
        async with pacer.slot("create"):
            pass

    asyncio.run(scenario())

    assert waits == [BudgetWait("create", 2.0, 60)]


def test_a_budget_wait_lengthened_meanwhile_is_announced_once(fake_clock: FakeClock) -> None:
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep)
    waits: list[BudgetWait] = []
    pacer.on_budget_wait = waits.append

    async def another_429() -> None:
        await fake_clock.sleep(600.0)
        pacer.spent_elsewhere("update", 1200.0)  # now until 1800 s

    async def write() -> None:
        async with pacer.slot("update"):
            pass

    async def scenario() -> None:
        pacer.spent_elsewhere("update", 1200.0)
        await asyncio.gather(write(), another_429())

    asyncio.run(scenario())

    assert waits == [BudgetWait("update", 1200.0, 60)]
    assert fake_clock.elapsed == 1800.0


def test_a_budget_wait_past_the_deadline_names_its_minutes_rounded_up(
    fake_clock: FakeClock,
) -> None:
    stop = Stop(deadline=fake_clock.now + 30.0, clock=fake_clock)
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)
    pacer.spent_elsewhere("update", 61.0)

    async def scenario() -> None:
        with pytest.raises(NotStarted, match=r"frees up in 2 min\)$"):
            async with pacer.slot("update"):
                pass

    asyncio.run(scenario())


def test_a_deadline_refusal_while_waiting_for_the_pace_names_no_budget(
    fake_clock: FakeClock,
) -> None:
    stop = Stop(clock=fake_clock)
    pacer = Pacer(Pacing(per_second=0.25), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)

    async def scenario() -> None:
        async with pacer.slot("update"):
            pass
        stop.deadline = fake_clock.now + 2.0
        with pytest.raises(NotStarted) as refused:
            async with pacer.slot("update"):
                pass
        assert str(refused.value) == "it could not finish within --max-duration"

    asyncio.run(scenario())


def test_a_write_waiting_for_one_in_flight_is_checked_against_its_real_wait(
    fake_clock: FakeClock,
) -> None:
    # 1.5/s: one request per 2/3 s. The second write cannot know its wait while the first
    # is in flight; it is judged once that one is answered, not refused beforehand.
    stop = Stop(deadline=fake_clock.now + 1.8, clock=fake_clock)
    pacer = Pacer(
        Pacing(per_second=1.5, headroom=0.0), clock=fake_clock, sleep=fake_clock.sleep, stop=stop
    )
    sent: list[float] = []

    async def write(duration: float) -> None:
        async with pacer.slot("update"):
            sent.append(fake_clock.elapsed)
            await fake_clock.sleep(duration)

    async def scenario() -> None:
        await asyncio.gather(write(0.1), write(0.0))

    asyncio.run(scenario())

    assert sent == [0.0, pytest.approx(0.1 + 2 / 3)]


def test_a_write_waiting_for_one_in_flight_sleeps_rather_than_spins(
    fake_clock: FakeClock,
) -> None:
    reads = 0

    def clock() -> float:
        nonlocal reads
        reads += 1
        return fake_clock.now

    pacer = Pacer(Pacing(per_second=1.0), clock=clock, sleep=fake_clock.sleep)

    async def first(answered: asyncio.Event) -> None:
        async with pacer.slot("update"):
            await answered.wait()

    async def scenario() -> None:
        await _run(pacer, fake_clock, ["read"])  # one answered already
        answered = asyncio.Event()
        in_flight = asyncio.ensure_future(first(answered))
        for _ in range(20):  # its turn in the pace
            await asyncio.sleep(0)
        second = asyncio.ensure_future(_run(pacer, fake_clock, ["update"]))
        for _ in range(200):  # the first write's answer is slow to come
            await asyncio.sleep(0)
        answered.set()
        await asyncio.gather(in_flight, second)

    # Twice, in two event loops, as the CLI lists in one and writes in another.
    for _ in range(2):
        reads = 0
        asyncio.run(scenario())
        assert reads < 20


def test_debug_logs_say_how_long_each_wait_is(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # What `--debug` shows of pacing: every wait, and why.
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep)

    with caplog.at_level(logging.DEBUG, logger="reconciler.client"):
        pacer.hold(5.0)
        asyncio.run(_run(pacer, fake_clock, ["update"]))
        pacer.spent_elsewhere("update", 1200.0)
        asyncio.run(_run(pacer, fake_clock, ["update"]))

    assert caplog.messages == [
        "pacing: holding 5.000s after a 429",
        "pacing: update waits 1200.000s",
    ]


def test_a_write_checking_its_source_needs_only_its_own_time_before_the_deadline(
    fake_clock: FakeClock,
) -> None:
    stop = Stop(deadline=fake_clock.now + 1.0, clock=fake_clock)
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)
    checks: list[float] = []

    async def check() -> None:
        checks.append(fake_clock.elapsed)

    async def scenario() -> None:
        before_write.set(check)
        async with pacer.slot("update"):  # one second left: a write's assumed second
            pass

    asyncio.run(scenario())

    assert checks == [0.0]


def test_a_write_waits_for_the_hourly_budget_held_by_one_in_flight(
    fake_clock: FakeClock,
) -> None:
    # Its wait is unknown until the first is answered: no minutes to name yet.
    stop = Stop(deadline=fake_clock.now + 7200.0, clock=fake_clock)
    pacer = Pacer(
        Pacing(per_second=None, updates_per_hour=1, headroom=0.0),
        clock=fake_clock,
        sleep=fake_clock.sleep,
        stop=stop,
    )
    sent: list[float] = []

    async def write() -> None:
        async with pacer.slot("update"):
            sent.append(fake_clock.elapsed)
            await fake_clock.sleep(1.0)

    async def scenario() -> None:
        await asyncio.gather(write(), write())

    asyncio.run(scenario())

    assert sent == [0.0, 3601.0]


def test_the_defaults_are_the_documented_limits() -> None:
    # README: 4 requests/s, 60 creates/h, 60 updates/h; a request stops retrying after 120 s.
    pacing = Pacing()
    assert (pacing.per_second, pacing.creates_per_hour, pacing.updates_per_hour) == (4.0, 60, 60)
    assert RetryPolicy().deadline == 120.0


# --------------------------------------------------------------------------- audit


def test_a_retry_policy_refusal_names_the_field_and_the_value_given() -> None:
    with pytest.raises(ValueError) as refused:
        RetryPolicy(attempts=0)
    assert str(refused.value) == "RetryPolicy.attempts must be at least 1 (got 0)"


@pytest.mark.parametrize(
    ("limits", "field", "invalid"),
    [(Pacing(), "per_second", 0.0), (RetryPolicy(), "attempts", 0)],
)
def test_limits_once_checked_cannot_be_set_to_a_value_their_check_refuses(
    limits: Pacing | RetryPolicy, field: str, invalid: float
) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(limits, field, invalid)
    assert getattr(limits, field) != invalid


def test_a_write_with_less_time_left_than_a_write_takes_is_refused_naming_only_the_deadline(
    fake_clock: FakeClock,
) -> None:
    # No budget and no pace to wait for: the message has nothing to add to the deadline.
    stop = Stop(deadline=fake_clock.time() + 0.5, clock=fake_clock)
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)

    async def scenario() -> None:
        async with pacer.slot("read"):
            pass
        with pytest.raises(NotStarted) as refused:
            async with pacer.slot("update"):
                pass
        assert str(refused.value) == "it could not finish within --max-duration"

    asyncio.run(scenario())


def test_refusals_after_a_budget_wait_count_afresh_before_marking_it_spent_again(
    fake_clock: FakeClock,
) -> None:
    """The wait answered the refusals before it: seven more are not yet eight in a row."""
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep)

    async def scenario() -> None:
        for _ in range(7):
            pacer.refused("update", said_how_long=False)
        assert pacer.spent_elsewhere("update", 10.0)
        for _ in range(7):
            pacer.refused("update", said_how_long=False)
        async with pacer.slot("update"):
            pass
        assert fake_clock.elapsed == 10.0  # the 429's ten seconds, not a whole window
        for _ in range(8):
            pacer.refused("update", said_how_long=False)
        async with pacer.slot("update"):
            pass

    asyncio.run(scenario())

    assert fake_clock.elapsed == pytest.approx(10.0 + 3600.01)


def test_the_pauses_of_a_long_run_leave_nothing_listening_for_its_stop(
    fake_clock: FakeClock,
) -> None:
    # Hours of paced writes pause thousands of times: each must take its listener away.
    stop = Stop()
    pacer = Pacer(Pacing(per_second=1.0), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)

    async def scenario() -> None:
        for _ in range(20):
            async with pacer.slot("update"):
                pass
        await pacer.pause(5.0)

    asyncio.run(scenario())

    assert fake_clock.elapsed >= 24.0
    assert stop._listeners == []


# A runner whose clock is an hour and a half fast, answered by a server on time.
_SERVER_ANSWERED = "Wed, 21 Oct 2015 07:28:00 GMT"
_RUNNER_NOW = datetime(2015, 10, 21, 9, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("date", [_SERVER_ANSWERED, " Wed, 21 Oct 2015 07:28:00 -0000 "])
def test_a_retry_after_date_is_waited_from_the_answers_date_when_the_runners_clock_is_off(
    date: str,
) -> None:
    # README: a date is read against the answer's `Date` (a zone-less one is UTC), so the
    # wait is what the server asked, not none (or hours) by the runner's own clock.
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT", "date": date}

    assert retry_after(headers, now=_RUNNER_NOW) == 10.0


def test_an_unreadable_date_leaves_a_date_or_a_unix_time_read_against_the_runners_clock() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 09:00:30 GMT", "date": "yesterday"}
    reset = {"x-ratelimit-reset": "1700000030", "x-ratelimit-remaining": "0", "date": "-"}

    assert retry_after(headers, now=_RUNNER_NOW) == 30.0
    assert rate_limit_reset(reset, now=1_700_000_000.0) == 30.0


def test_a_unix_time_reset_is_waited_from_the_answers_date_when_the_runners_clock_is_off() -> None:
    # The server answered at 1_699_999_990 on its clock; the runner's reads 1_700_005_400.
    answered = format_datetime(datetime.fromtimestamp(1_699_999_990, timezone.utc), usegmt=True)
    headers = {"x-ratelimit-reset": "1700000030", "x-ratelimit-remaining": "0", "date": answered}

    assert rate_limit_reset(headers, now=1_700_005_400.0) == 40.0


def test_a_unix_time_reset_with_no_date_is_read_against_this_machines_clock() -> None:
    # The client passes no `now`: the default must be the machine's clock, not the epoch
    # (which would read a reset ten minutes away as a wait of decades).
    reset = int(time.time()) + 600

    waited = rate_limit_reset({"x-ratelimit-reset": str(reset), "x-ratelimit-remaining": "0"})

    assert waited is not None and 0.0 < waited <= 600.0


@pytest.mark.parametrize("field", ["base", "cap", "deadline"])
def test_a_negative_retry_setting_is_refused_naming_the_settings_that_must_not_be(
    field: str,
) -> None:
    with pytest.raises(ValueError) as refused:
        RetryPolicy(**{field: -1.0})  # type: ignore[arg-type]
    assert str(refused.value) == "RetryPolicy.base, cap and deadline must not be negative"


def test_every_listener_hears_a_stop_even_when_one_before_it_stops_listening() -> None:
    # A one-shot listener unsubscribing as it is called must not make the next one miss
    # the stop (a write waiting for its budget would then wait on after a SIGTERM).
    stop = Stop()
    heard: list[str] = []

    def once() -> None:
        heard.append("once")
        unsubscribe_once()

    unsubscribe_once = stop.subscribe(once)
    stop.subscribe(lambda: heard.append("waiter"))
    stop.request("stopped by SIGTERM")
    stop.request("stopped by SIGTERM")

    assert heard == ["once", "waiter", "waiter"]


def test_a_write_waits_only_for_the_oldest_write_of_the_hour_to_leave_the_window(
    fake_clock: FakeClock,
) -> None:
    # 2 creates an hour, sent at 0 and 30 min: the third is due at 60 min, when the first
    # leaves the window, not at 90 (a stall of half an hour per budget's worth of writes).
    pacer = Pacer(
        Pacing(per_second=None, creates_per_hour=2, headroom=0.0),
        clock=fake_clock,
        sleep=fake_clock.sleep,
    )
    sent: list[float] = []

    async def scenario() -> None:
        for pause in (0.0, 1800.0, 0.0):
            fake_clock.advance(pause)
            async with pacer.slot("create"):
                sent.append(fake_clock.elapsed)

    asyncio.run(scenario())

    assert sent == [0.0, 1800.0, 3600.0]


def test_the_default_retry_policy_backs_off_with_jitter_rather_than_retrying_at_once() -> None:
    # api-notes: without a Retry-After, back off with jitter; a zero base or cap would
    # send every retry of a failing server at once.
    policy = RetryPolicy(jitter=random.Random(11))

    means = [sum(policy.backoff(a) for _ in range(200)) / 200 for a in (1, 4, 12)]

    assert 0.0 < means[0] < means[1] < means[2]


def test_a_slow_create_sets_the_time_a_write_needs_before_the_deadline(
    fake_clock: FakeClock,
) -> None:
    # Creates are writes too: one that took 5 s says a create 3 s before --max-duration
    # would not finish, though no update has been timed.
    stop = Stop(clock=fake_clock)
    pacer = Pacer(Pacing(per_second=None), clock=fake_clock, sleep=fake_clock.sleep, stop=stop)

    async def scenario() -> None:
        async with pacer.slot("create"):
            fake_clock.advance(5.0)
        stop.deadline = fake_clock.now + 3.0
        with pytest.raises(NotStarted, match="--max-duration"):
            async with pacer.slot("create"):
                pass

    asyncio.run(scenario())
